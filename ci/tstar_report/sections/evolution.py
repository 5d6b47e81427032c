"""Experiment 3 (results.json section "evolution"): logit noise alpha(t) during greedy generation.

Summary: per (scale, prompt), alpha first -> last, the slope with its seeds' CI, the trend bench
named (details.trend.label, shown as written) and the fitted temperature schedule; then, as a
comparison, the notebook's threshold rule on the prompt-averaged alpha(t). Figure: evolution.png
(alpha(t) per prompt, and their average with its least-squares line).
"""

import math

from ..common import figure_link, finite, fmt, fmt_scale, fmt_T, number_list, table
from ..plotting import legend_headroom, save
from . import Figure

INSTANCE = {"prompt": "number", "scale": "number"}
# The notebook's trend rule: |slope| <= 0.001 per step is "stable" (a comparison only: the trend of
# each entry is bench's details.trend.label).
NOTEBOOK_RULE_THRESHOLD = 1e-3
NOTEBOOK_RULE_COLUMN = f"notebook's rule (|slope| ≤ {NOTEBOOK_RULE_THRESHOLD:g} is stable)"


def title(family):
    return "## Experiment 3: noise evolution during generation"


def sort_key(entry):
    return entry.scale, entry.prompt


def check(path, entries):
    for entry in entries:
        number_list(path, entry, "alpha_t")


def summary(view):
    entries, figures = view.entries, view.figures
    lines = []
    rows = []
    for e in entries:
        slope = fmt(e.get("slope"), 3)
        if finite(e.get("slope_ci95")):
            slope += f" ± {fmt(e.get('slope_ci95'), 2)}"
        fit = f"T_max {fmt_T(e.get('T_max'))}, β {fmt(e.get('beta'), 3)}"
        if finite(e.get("beta_ci95_lo")) and finite(e.get("beta_ci95_hi")):
            fit += f" [{fmt(e.get('beta_ci95_lo'), 2)}, {fmt(e.get('beta_ci95_hi'), 2)}]"
        if finite(e.get("schedule_p")):
            fit += f"; vs constant T: F {fmt(e.get('schedule_F'), 3)}, p {fmt(e.get('schedule_p'), 2)}"
        steps = f"{int(e.get('steps'))}" + (" (EOS)" if e.details.get("stopped_at_eos") else "") \
            if finite(e.get("steps")) else "n/a"
        rows.append((fmt_scale(e.scale), prompt_text(e, 40), steps, f"{fmt(e.get('alpha_first'))} → {fmt(e.get('alpha_last'))}",
                     fmt(e.get("alpha_mean")), slope, trend_label(e), notebook_rule(e.get("slope")), fit))
    lines += table(("scale", "prompt", "steps", "α first → last", "mean α", "slope /step ± 95% CI (seeds)", "trend",
                    NOTEBOOK_RULE_COLUMN, "fitted T(t) = T_max/√(1+βt), β 95% CI (bootstrap over seeds)"), rows)
    lines += ["", "Trend: as bench named it (details.trend.label): a trend is named only when the seeds' 95% "
                  f"interval of the slope excludes 0. {NOTEBOOK_RULE_COLUMN}: the notebook's threshold on the slope "
                  "alone, for comparison. The schedule's F-test asks whether T(t) fits better than one constant T "
                  "(p ≥ 0.05: no evidence of a schedule)."]
    for scale in sorted({e.scale for e in entries}):
        slope, _ = linear_fit(average_alpha_t([e for e in entries if e.scale == scale]))
        lines += ["", f"Scale {fmt_scale(scale)}: the prompt-averaged α(t) has slope {fmt(slope, 3)} per step → "
                      f"{notebook_rule(slope)} by the {NOTEBOOK_RULE_COLUMN}."]
    return lines + [""] + figure_link(figures, "evolution", "Evolution")


def trend_label(entry):
    """The trend bench named for the entry (details.trend.label: increase, decrease, no trend
    resolved, too few steps); the report does not recompute it."""
    trend = entry.details.get("trend")
    label = trend.get("label") if isinstance(trend, dict) else None
    return str(label) if isinstance(label, str) else "not recorded"


def notebook_rule(slope):
    """The notebook's trend rule, shown beside bench's label as a comparison: |slope| <=
    NOTEBOOK_RULE_THRESHOLD per step is "stable"."""
    if not finite(slope):
        return "n/a"
    if slope > NOTEBOOK_RULE_THRESHOLD:
        return "increase"
    return "decrease" if slope < -NOTEBOOK_RULE_THRESHOLD else "stable"


def plot_evolution(plt, view, path):
    entries = view.entries
    scales = sorted({e.scale for e in entries})
    fig, axes = plt.subplots(len(scales), 2, figsize=(15, 4.8 * len(scales)), squeeze=False,
                             constrained_layout=True)
    fig.suptitle("Experiment 3: logit noise α(t) during greedy generation (teacher-forced on the clean "
                 "trajectory)")
    for row, scale in enumerate(scales):
        at_scale = [e for e in entries if e.scale == scale]
        draw_evolution_prompts(axes[row][0], at_scale, scale)
        draw_evolution_average(axes[row][1], at_scale, scale)
    save(plt, fig, path)


def draw_evolution_prompts(ax, entries, scale):
    for index, entry in enumerate(entries):
        alpha_t = number_list("", entry, "alpha_t")
        slope = entry.get("slope")
        ax.plot(range(len(alpha_t)), alpha_t, "o-", color=f"C{index}", ms=4, lw=1.5,
                label=f"{prompt_text(entry)}: {trend_label(entry)}, slope {fmt(slope, 2)}/step")
    ax.set_xlabel("generation step t")
    ax.set_ylabel("α(t) (dimensionless)")
    ax.set_title(f"Per prompt (scale {fmt_scale(scale)})")
    legend_headroom(ax)
    ax.legend(loc="upper left")


def prompt_text(entry, width=28):
    text = entry.details.get("prompt")
    if not isinstance(text, str):
        return f"prompt {entry.prompt}"
    text = " ".join(text.split())
    return repr(text if len(text) <= width else text[:width - 1] + "…")


def draw_evolution_average(ax, entries, scale):
    average = average_alpha_t(entries)
    slope, intercept = linear_fit(average)
    steps = range(len(average))
    ax.plot(steps, average, "o-", color="tab:blue", lw=2, ms=6, label=f"mean α(t) over {len(entries)} prompts")
    if finite(slope):
        ax.plot(steps, [intercept + slope * t for t in steps], "--", color="tab:red", lw=2,
                label=f"linear trend: slope {fmt(slope, 2)}/step → {NOTEBOOK_RULE_COLUMN}: "
                      f"{notebook_rule(slope)}")
    ax.set_xlabel("generation step t")
    ax.set_ylabel("mean α(t) (dimensionless)")
    ax.set_title(f"Average over prompts with trend (scale {fmt_scale(scale)})")
    legend_headroom(ax)
    ax.legend(loc="upper left")


def average_alpha_t(entries):
    """Per step, the mean of alpha(t) over the prompts that reached that step."""
    curves = [number_list("", e, "alpha_t") for e in entries]
    length = max((len(c) for c in curves), default=0)
    return [sum(c[t] for c in curves if t < len(c)) / sum(1 for c in curves if t < len(c))
            for t in range(length)]


def linear_fit(ys):
    """(slope, intercept) of the least-squares line through (i, ys[i])."""
    n = len(ys)
    if n < 2:
        return math.nan, ys[0] if ys else math.nan
    mean_x, mean_y = (n - 1) / 2, sum(ys) / n
    sxx = sum((i - mean_x) ** 2 for i in range(n))
    sxy = sum((i - mean_x) * (y - mean_y) for i, y in enumerate(ys))
    slope = sxy / sxx
    return slope, mean_y - slope * mean_x



FIGURES = (Figure("evolution", "evolution.png", plot_evolution),)
