"""Experiment 1 (results.json section "weight_noise"): weight noise -> logit noise -> best temperature.

Summary: the per-scale table (alpha, amplification, best T, recommended T, KL, P(correct)) and which
T* predictor is closest to the measured best T. Figures: weight_noise.png (scale -> alpha, scale ->
T*, alpha vs T* with the predictors' curves), predictor_error.png (each predictor's error per scale),
pair_prediction.png (each (seed, prompt) pair's predicted T against its own best T).
"""

import math

from ..columns import add_optional_cells, add_optional_headers
from ..common import (ALPHA_LABEL, NOT_RESOLVED, figure_link, finite, fmt, fmt_scale, fmt_T, model_name,
                      seeds_of, table)
from ..plotting import (keep_for_axes, log_safe_lower, marker, omitted_note, save,
                        scale_axis_label, set_log_if_spanning)
from ..predictors import pair_figure_entry, pair_predictions, predictor_section, predictors_of_pairs
from ..spread import cpu_spread_note
from ..temperature import (alpha_header, has_model_logits_alpha, logits_dtypes, not_resolved_text, predictors_of,
                           pretty_formula, rounding_floor_note)
from . import Figure

INSTANCE = {"scale": "number"}
# Predictors that are functions of alpha alone can be drawn as curves over alpha.
ALPHA_CURVES = {
    "sqrt_1p_alpha": lambda a: math.sqrt(1.0 + a),
    "1p_alpha": lambda a: 1.0 + a,
}


def title(family):
    return "## Experiment 1: weight noise → logit noise → best temperature"


def sort_key(entry):
    return entry.scale


def check(path, entries):
    """The per-pair values the pair figure draws must match the pairs."""
    for entry in entries:
        pair_predictions(path, entry)


def summary(view):
    return weight_noise_section(view) + predictor_section(view.family, view.figures)


def weight_noise_section(view):
    experiments, entries, figures = view.experiments, view.entries, view.figures
    cpu_spread, profile = view.cpu_spread, view.profile
    lines = []
    rows, marked = [], 0
    floor = has_model_logits_alpha(entries)
    for e in entries:
        amplification = e.get("alpha") / e.scale ** 2 if e.scale > 0 else math.nan
        boundary = " (at search boundary)" if e.get("best_T_at_boundary") == 1 else ""
        row = [fmt_scale(e.scale), f"{fmt(e.get('alpha'))} ± {fmt(e.get('alpha_ci95'), 2)}",
               fmt(amplification),
               f"{fmt_T(e.get('best_T'))} ± {fmt(e.get('best_T_ci95'), 2)}{boundary}{not_resolved_text(e)}",
               recommended_T(e.get("best_T"), e.get("best_T_ci95")),
               fmt(e.get("kl_T1")), fmt(e.get("kl_best")),
               f"{fmt(e.get('p_correct_T1'))} → {fmt(e.get('p_correct_best'))}", fmt(e.get("top1_match"), 3)]
        marked += add_optional_cells(row, e, view, floor)
        rows.append(row)
    logits, model_dtype = logits_dtypes(experiments)
    header = add_optional_headers(["scale", alpha_header(logits), "amplification α/scale²", "best T* ± 95% CI",
                                   "recommended T", "KL at T=1 [nats]", "KL at best T", "P(correct) T=1 → best T",
                                   "top-1 match"], view, floor, model_dtype)
    lines += table(header, rows)
    if marked:
        lines += ["", cpu_spread_note(profile, cpu_spread)]
    lines += ["", f"α = σ²/τ² (variance of the logit change over the variance of the clean logits"
              f"{f', on {logits} logits' if logits else ''}), mean over seeds × prompts; best T* = argmin "
              f"over T of the mean KL(clean ‖ softmax(noisy/T)) over seeds × prompts. Search: "
              f"{search_text(experiments)}{resolution_text(entries)}. CIs are Student t over seeds. "
              f"\"{NOT_RESOLVED}\" (scales > 0): |best T − 1| ≤ max(95% CI half-width, search resolution), so "
              f"this run cannot tell best T from 1. "
              "Recommended T is the best T rounded to the decimal its CI "
              "resolves (2 decimals without a CI). Top-1 match: fraction of (seed, prompt) pairs whose "
              "argmax token is unchanged."
              + (" CPU spread: how far the value moves between CPUs on the native compute profile, "
                 "max_rel·|v| with max_rel the largest relative difference ci/spread measured in the "
                 f"{view.family.name} family (at v = 0 the family's largest absolute difference is shown beside "
                 "it); a bound from other runs, not a CI." if cpu_spread else ""), ""]
    if floor:
        lines += [rounding_floor_note(entries, logits, model_dtype), ""]
    return lines + figure_link(figures, "weight_noise", "Experiment 1") + figure_link(
        figures, "predictor_error", "Predictor error")


def search_text(experiments):
    """How the run searched for best T, from settings.temperature_search."""
    search = experiments.doc.get("settings", {}).get("temperature_search")
    if not isinstance(search, dict) or not search.get("method"):
        return "search method not recorded"
    text = str(search["method"])
    if finite(search.get("tol")):
        text += f", tol {search['tol']:g}"
    if finite(search.get("lo")) and finite(search.get("hi")):
        text += f", T in [{search['lo']:g}, {search['hi']:g}]"
    return text


def resolution_text(entries):
    resolutions = [e.get("best_T_resolution") for e in entries if finite(e.get("best_T_resolution"))]
    return f"; resolution (best_T_resolution) ≤ {fmt(max(resolutions), 2)} in T" if resolutions else ""


def recommended_T(best_T, ci):
    """The measured best T rounded to the decimal its 95% CI supports (1 to 3 decimals; 2 without
    a CI): more digits than the seeds can resolve would be false precision."""
    if not finite(best_T):
        return "n/a"
    decimals = 2
    if finite(ci) and ci > 0:
        decimals = min(3, max(1, -math.floor(math.log10(ci))))
    return f"{best_T:.{decimals}f}"


def plot_weight_noise(plt, view, path):
    experiments, entries = view.experiments, view.entries
    predictors = predictors_of(entries)
    scales = [e.scale for e in entries]
    alpha = [e.get("alpha") for e in entries]
    alpha_ci = [e.get("alpha_ci95") if finite(e.get("alpha_ci95")) else 0.0 for e in entries]
    best = [e.get("best_T") for e in entries]
    best_ci = [e.get("best_T_ci95") if finite(e.get("best_T_ci95")) else 0.0 for e in entries]
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.2), constrained_layout=True)
    fig.suptitle(f"Experiment 1: weight noise → logit noise → T*  ({model_name(experiments)}, "
                 f"{len(seeds_of(experiments))} seeds, error bars: 95% CI over seeds)")
    draw_scale_to_alpha(axes[0], experiments, scales, alpha, alpha_ci)
    draw_scale_to_T(axes[1], experiments, entries, predictors, best, best_ci)
    draw_alpha_to_T(axes[2], entries, predictors, alpha, alpha_ci, best, best_ci)
    save(plt, fig, path)


def draw_scale_to_alpha(ax, experiments, scales, alpha, alpha_ci):
    xlog = set_log_if_spanning(ax, "x", scales)
    ylog = set_log_if_spanning(ax, "y", alpha)
    keep = keep_for_axes(scales, alpha, xlog, ylog)
    ax.errorbar([scales[i] for i in keep], [alpha[i] for i in keep],
                yerr=[log_safe_lower([alpha[i] for i in keep], [alpha_ci[i] for i in keep], ylog),
                      [alpha_ci[i] for i in keep]],
                fmt="o-", color="tab:blue", capsize=4, lw=2, ms=7, label="measured α (mean over seeds)")
    ax.set_xlabel(scale_axis_label(experiments))
    ax.set_ylabel(ALPHA_LABEL)
    ax.set_title("Weight noise → logit noise" + omitted_note(len(scales) - len(keep)))
    ax.legend(loc="upper left")


def draw_scale_to_T(ax, experiments, entries, predictors, best, best_ci):
    scales = [e.scale for e in entries]
    xlog = set_log_if_spanning(ax, "x", scales)
    keep = keep_for_axes(scales, best, xlog, False)
    xs = [scales[i] for i in keep]
    ax.errorbar(xs, [best[i] for i in keep], yerr=[best_ci[i] for i in keep], fmt="o-", color="black",
                capsize=4, lw=2, ms=7, label="measured best T (argmin KL)", zorder=5)
    for index, (key, formula) in enumerate(predictors):
        ax.plot(xs, [entries[i].get(f"T_{key}") for i in keep], marker(index) + "--",
                color=f"C{index + 1}", ms=5, lw=1.2, label=f"predicted {pretty_formula(formula)}")
    ax.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax.set_xlabel(scale_axis_label(experiments))
    ax.set_ylabel("temperature T (dimensionless)")
    ax.set_title("Weight noise → optimal temperature" + omitted_note(len(scales) - len(keep)))
    ax.legend(loc="upper left")


def draw_alpha_to_T(ax, entries, predictors, alpha, alpha_ci, best, best_ci):
    import numpy as np
    xlog = set_log_if_spanning(ax, "x", alpha)
    keep = keep_for_axes(alpha, best, xlog, False)
    xs = [alpha[i] for i in keep]
    if xs:
        lo, hi = (min(x for x in xs if x > 0), max(xs)) if xlog else (0.0, max(xs) * 1.1 or 1e-3)
        grid = np.geomspace(lo, hi, 200) if xlog else np.linspace(lo, hi, 200)
        for index, (key, formula) in enumerate(predictors):
            style = dict(color=f"C{index + 1}", label=f"{pretty_formula(formula)}")
            if key in ALPHA_CURVES:
                ax.plot(grid, [ALPHA_CURVES[key](a) for a in grid], "-", lw=2, **style)
            else:  # depends on more than alpha: its value at each measured scale
                style["label"] += " (at each scale)"
                ax.plot(xs, [entries[i].get(f"T_{key}") for i in keep], marker(index) + ":",
                        ms=5, lw=1, **style)
    ax.errorbar(xs, [best[i] for i in keep], yerr=[best_ci[i] for i in keep],
                xerr=[log_safe_lower(xs, [alpha_ci[i] for i in keep], xlog), [alpha_ci[i] for i in keep]],
                fmt="o", color="black", capsize=3, ms=7, label="measured best T", zorder=5)
    for n, i in enumerate(keep):  # alternate below/above: neighbouring alphas can be close
        ax.annotate(fmt_scale(entries[i].scale), (alpha[i], best[i]), xytext=(6, -12 if n % 2 else 8),
                    textcoords="offset points", fontsize=7, color="dimgray")
    ax.set_xlabel(ALPHA_LABEL)
    ax.set_ylabel("temperature T (dimensionless)")
    ax.margins(x=0.08)  # room for the scale label of the right-most point
    ax.set_title("Theory check: predictors vs measured best T\n(point labels: noise scale)")
    ax.legend(loc="upper left")


def plot_predictor_error(plt, view, path):
    experiments, entries = view.experiments, view.entries
    predictors = predictors_of(entries)
    fig, ax = plt.subplots(figsize=(10, 5.5), constrained_layout=True)
    scales = [e.scale for e in entries]
    xlog = set_log_if_spanning(ax, "x", scales)
    shown = [e for e in entries if not xlog or e.scale > 0]
    xs = [e.scale for e in shown]
    ci = [e.get("best_T_ci95") if finite(e.get("best_T_ci95")) else 0.0 for e in shown]
    ax.fill_between(xs, [-c for c in ci], ci, color="grey", alpha=0.2, label="± 95% CI of measured best T")
    for index, (key, formula) in enumerate(predictors):
        ax.plot(xs, [e.get(f"err_{key}") for e in shown], marker(index) + "-", lw=1.8, ms=7,
                color=f"C{index + 1}", label=pretty_formula(formula))
    ax.axhline(0.0, color="black", lw=1.2, label="zero error")
    ax.set_xlabel(scale_axis_label(experiments))
    ax.set_ylabel("predicted T − measured best T (dimensionless)")
    ax.set_title("T* predictors' error against the measured best T (Experiment 1)"
                 + omitted_note(len(entries) - len(shown)))
    ax.legend(loc="best")
    save(plt, fig, path)


def plot_pair_prediction(plt, view, path):
    from matplotlib.lines import Line2D
    entry, resolved = pair_figure_entry(view.entries)
    measured, predicted = pair_predictions("", entry)
    fig, ax = plt.subplots(figsize=(9, 8), constrained_layout=True)
    shown = list(measured) + [entry.get("best_T")]
    for index, (key, formula, values) in enumerate(predictors_of_pairs(entry, predicted)):
        style = dict(color=f"C{index + 1}", mec="black", ls="")
        ax.plot(measured, values, marker(index), ms=6, mew=0.3, alpha=0.8, **style,
                label=f"{pretty_formula(formula)}: pair RMS err "
                      f"{fmt(entry.get(f'pair_rms_{key}'), 2)}")
        pooled = entry.get(f"T_{key}")
        if finite(pooled) and finite(entry.get("best_T")):
            ax.plot([entry.get("best_T")], [pooled], marker(index), ms=14, mew=1.6, zorder=5,
                    **style)
            shown.append(pooled)
        shown += values
    shown = [v for v in shown if finite(v)]
    lo, hi = min(shown), max(shown)
    pad = 0.05 * (hi - lo) or 1e-3
    lo, hi = lo - pad, hi + pad
    ax.plot([lo, hi], [lo, hi], "-", color="black", lw=1.2, label="predicted = measured")
    ax.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax.axvline(1.0, color="grey", lw=0.8, ls=":")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("measured best T of the pair (its own argmin of KL; dimensionless)")
    ax.set_ylabel("predicted T of the pair (dimensionless)")
    ax.set_title(f"Experiment 1: predicted vs measured best T per (seed, prompt) pair, scale "
                 f"{fmt_scale(entry.scale)} ({len(measured)} pairs)\n"
                 + ("the largest scale where the pooled best T is resolved" if resolved else
                    "the pooled best T is not resolved at any scale: the largest scale shown"))
    handles, labels = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], marker="o", ls="", ms=12, mfc="white", mec="black", mew=1.6))
    labels.append(f"large marker: pooled T vs pooled best T {fmt_T(entry.get('best_T'))}")
    ax.legend(handles, labels, loc="best")
    save(plt, fig, path)


def missing_pair_values(view):
    if pair_figure_entry(view.entries)[0] is None:
        return f"no per-pair predictions (details.pair_best_T) at a {view.family.name} scale > 0 in this run"
    return None



FIGURES = (
    Figure("weight_noise", "weight_noise.png", plot_weight_noise),
    Figure("predictor_error", "predictor_error.png", plot_predictor_error),
    Figure("pair_prediction", "pair_prediction.png", plot_pair_prediction, missing_pair_values),
)
