"""Experiment 4 (results.json section "temp_sweep"): KL and P(correct) over a grid of temperatures.

Summary: per scale, the best T (argmin of the mean KL), the grid's best T, KL and P(correct) at
T = 1 and at the best T. Figure: temperature.png (KL(T) and P(correct)(T) per scale, the best T
and the predictors marked).
"""

from ..common import ReportError, figure_link, finite, fmt, fmt_scale, fmt_T, number_list, spans_decades, table
from ..plotting import marker, save
from ..temperature import predictors_of, pretty_formula
from . import Figure

INSTANCE = {"scale": "number"}


def title(family):
    return "## Experiment 4: temperature sweep"


def sort_key(entry):
    return entry.scale


def check(path, entries):
    """The curves the figure draws: grid, kl and p_correct, lists of numbers of one length."""
    for entry in entries:
        lengths = {len(number_list(path, entry, key)) for key in ("grid", "kl", "p_correct")}
        if len(lengths) != 1:
            raise ReportError(f"{path}: {entry.name}: grid, kl and p_correct differ in length")


def summary(view):
    entries, figures = view.entries, view.figures
    lines = []
    rows = []
    for e in entries:
        at_edge = e.details.get("grid_best_at_boundary") is True
        rows.append((fmt_scale(e.scale), fmt_T(e.get("best_T")), fmt_T(e.get("grid_best_T"), 2) + (" (grid edge)" if at_edge else ""),
                     fmt(e.get("kl_T1")), fmt(e.get("kl_best")),
                     f"{fmt(e.get('p_correct_T1'))} → {fmt(e.get('p_correct_best'))}"))
    lines += table(("scale", "best T (argmin of mean KL)", "best T on the grid", "KL at T=1", "KL at best T",
                    "P(correct) T=1 → best T"), rows)
    return lines + [""] + figure_link(figures, "temperature", "Temperature sweep")


def plot_temperature(plt, view, path):
    entries = view.entries
    predictors = predictors_of(entries)
    fig, axes = plt.subplots(1, 2, figsize=(15, 5.8), constrained_layout=True)
    fig.suptitle("Experiment 4: temperature sweep (mean over seeds × prompts); colour: noise scale, "
                 "marker: measured best T (★) or a predictor's T")
    kl_values = [v for e in entries for v in number_list("", e, "kl")]
    kl_log = spans_decades(kl_values)
    for index, entry in enumerate(entries):
        color = f"C{index % 10}"
        grid = number_list("", entry, "grid")
        draw_sweep_curve(axes[0], entry, predictors, grid, number_list("", entry, "kl"), "kl_best", color)
        draw_sweep_curve(axes[1], entry, predictors, grid, number_list("", entry, "p_correct"),
                         "p_correct_best", color)
    if kl_log:
        axes[0].set_yscale("log", nonpositive="mask")
        # The grid curves set the range; a best-T KL far below them (1e-12 at scale 0) would
        # squash every curve into the top of the panel.
        axes[0].set_ylim(bottom=min(v for v in kl_values if v > 0) / 3)
    axes[0].set_ylabel("KL(clean ‖ softmax(noisy/T)) [nats]" + (" — log axis" if kl_log else ""))
    axes[1].set_ylabel("P(clean argmax token) under softmax(noisy/T)")
    axes[0].set_title("KL divergence vs temperature")
    axes[1].set_title("Probability of the clean top token vs temperature")
    for ax in axes:
        ax.set_xlabel("temperature T (dimensionless)")
    axes[0].legend(loc="lower right", title="noise scale", ncol=2)
    axes[1].legend(handles=marker_legend_handles(predictors), loc="upper right", title="T marked")
    save(plt, fig, path)


def draw_sweep_curve(ax, entry, predictors, grid, values, best_counter, color):
    import numpy as np
    ax.plot(grid, values, "-", color=color, lw=2, label=f"{fmt_scale(entry.scale)}")
    best_T, best_value = entry.get("best_T"), entry.get(best_counter)
    if finite(best_T) and finite(best_value):
        ax.plot([best_T], [best_value], "*", color=color, ms=15, mec="black", mew=0.8, zorder=6)
    for index, (key, _) in enumerate(predictors):
        T = entry.get(f"T_{key}")
        if finite(T) and grid and grid[0] <= T <= grid[-1]:  # outside the grid there is no curve value
            ax.plot([T], [float(np.interp(T, grid, values))], marker(index), color=color,
                    mec="black", mew=0.6, ms=7, zorder=5)


def marker_legend_handles(predictors):
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], marker="*", ls="", color="grey", mec="black", ms=13, label="measured best T")]
    for index, (_, formula) in enumerate(predictors):
        handles.append(Line2D([], [], marker=marker(index), ls="", color="grey",
                              mec="black", ms=7, label=pretty_formula(formula)))
    return handles



FIGURES = (Figure("temperature", "temperature.png", plot_temperature),)
