"""Experiment 2 (results.json section "layer"): noise in one group of weights at a time.

Summary: per scale, the noise groups ranked by alpha with their best T. Figures:
layer_sensitivity.png (alpha per group, bars, best T* written on each bar) and layer_heatmap.png
(group x scale heatmap of alpha).
"""

import math
import re

from ..common import (ALPHA_LABEL, NOT_RESOLVED, count_text, figure_link, finite, fmt, fmt_scale, fmt_T,
                      seeds_of, spans_decades, table)
from ..plotting import save, scale_axis_label, set_log_if_spanning
from ..columns import add_optional_cells, add_optional_headers
from ..spread import cpu_spread_note
from ..temperature import (alpha_header, has_model_logits_alpha, logits_dtypes, not_resolved_text,
                           rounding_floor_note)
from . import Figure

INSTANCE = {"group": "string", "scale": "number"}
NAMED_GROUP_ORDER = ("all", "attention", "mlp", "lm_head", "early", "middle", "late")


def title(family):
    return "## Experiment 2: most sensitive noise groups"


def sort_key(entry):
    return entry.scale, group_sort_key(entry.group)


def check(path, entries):
    """Nothing beyond the counters (read with Entry.get, absent ones shown as n/a)."""


def summary(view):
    experiments, entries, figures = view.experiments, view.entries, view.figures
    cpu_spread, profile = view.cpu_spread, view.profile
    lines = []
    marked = 0
    floor = has_model_logits_alpha(entries)
    logits, model_dtype = logits_dtypes(experiments)
    for scale in sorted({e.scale for e in entries}):
        ranked = sorted((e for e in entries if e.scale == scale), key=lambda e: -e.get("alpha"))
        rows = []
        for rank, e in enumerate(ranked, 1):
            row = [rank, e.group, f"{fmt(e.get('alpha'))} ± {fmt(e.get('alpha_ci95'), 2)}",
                   fmt_T(e.get("best_T")) + not_resolved_text(e),
                   count_text(e.get("tensors")), count_text(e.get("params")), fmt(e.get("top1_match"), 3)]
            marked += add_optional_cells(row, e, view, floor)
            rows.append(row)
        header = add_optional_headers(["rank", "group", alpha_header(logits), "best T*", "tensors", "parameters",
                                       "top-1 match"], view, floor, model_dtype)
        top = ", ".join(f"{e.group} (α {fmt(e.get('alpha'), 3)})" for e in ranked[:3])
        lines += [f"Scale {fmt_scale(scale)}: most sensitive {top}. All groups ranked by α:", ""]
        lines += table(header, rows)
        lines += [""]
    if any(finite(e.get("best_T_resolution")) for e in entries):
        lines += [f"\"{NOT_RESOLVED}\": |best T − 1| ≤ the search resolution (best_T_resolution): the run cannot "
                  f"tell best T from 1. The Layer experiment has no CI over seeds for best T, so a best T not "
                  f"marked can still be within the seeds' noise.", ""]
    if floor:
        lines += [rounding_floor_note(entries, logits, model_dtype), ""]
    if cpu_spread:
        lines += ["CPU spread: how far the value moves between CPUs on the native compute profile, "
                  f"max_rel·|v| with max_rel the largest relative difference ci/spread measured in the {view.family.name} "
                  "family; a bound from other runs, not a CI.", ""]
    if marked:
        lines += [cpu_spread_note(profile, cpu_spread), ""]
    return lines + figure_link(figures, "layer_sensitivity", "Layer sensitivity") + figure_link(
        figures, "layer_heatmap", "Layer heatmap")


def group_sort_key(group):
    """Named groups in the notebook's order, then layer:N by N, then anything else by name."""
    if group in NAMED_GROUP_ORDER:
        return (0, NAMED_GROUP_ORDER.index(group), "")
    match = re.fullmatch(r"layer:(\d+)", group)
    if match:
        return (1, int(match.group(1)), "")
    return (2, 0, group)


def plot_layer_sensitivity(plt, view, path):
    experiments, entries = view.experiments, view.entries
    groups = sorted({e.group for e in entries}, key=group_sort_key)
    scales = sorted({e.scale for e in entries})
    by_key = {(e.group, e.scale): e for e in entries}
    height = 0.8 / len(scales)
    fig, ax = plt.subplots(figsize=(11, 1.4 + 0.26 * len(groups) * len(scales) + 0.25 * len(groups)),
                           constrained_layout=True)
    alphas = [e.get("alpha") for e in entries]
    xlog = set_log_if_spanning(ax, "x", alphas)
    for s_index, scale in enumerate(scales):
        rows = [(g_index, by_key[(g, scale)]) for g_index, g in enumerate(groups) if (g, scale) in by_key]
        rows = [(i, e) for i, e in rows if finite(e.get("alpha")) and (not xlog or e.get("alpha") > 0)]
        ys = [i + (s_index - (len(scales) - 1) / 2) * height for i, _ in rows]
        values = [e.get("alpha") for _, e in rows]
        ax.barh(ys, values, height=height * 0.9, color=f"C{s_index}", label=f"scale {fmt_scale(scale)}")
        for y, (_, e) in zip(ys, rows):
            ax.annotate(f" T*={fmt_T(e.get('best_T'), 3)}", (e.get("alpha"), y), va="center", fontsize=7)
    ax.set_yticks(range(len(groups)))
    ax.set_yticklabels(groups)
    ax.invert_yaxis()
    left, right = ax.get_xlim()
    if xlog:  # bars start at the decade below the smallest alpha, so every bar has a visible length
        left = 10 ** math.floor(math.log10(min(a for a in alphas if finite(a) and a > 0)))
    ax.set_xlim(left, right * (6 if xlog else 1.2))  # room for the T* labels
    ax.set_xlabel(ALPHA_LABEL + (" — log axis" if xlog else ""))
    ax.set_ylabel("noise group (only these weights noised)")
    ax.set_title(f"Experiment 2: layer sensitivity to weight noise (prompt "
                 f"{experiments.doc.get('settings', {}).get('layer_prompt', '?')}, "
                 f"{len(seeds_of(experiments))} seeds); T* = measured best T")
    ax.legend(loc="lower right")
    save(plt, fig, path)


def plot_layer_heatmap(plt, view, path):
    import numpy as np
    from matplotlib.colors import LogNorm, Normalize
    experiments, entries = view.experiments, view.entries
    groups = sorted({e.group for e in entries}, key=heatmap_row_key)
    scales = sorted({e.scale for e in entries})
    by_key = {(e.group, e.scale): e.get("alpha") for e in entries}
    grid = np.array([[by_key.get((g, s), math.nan) for s in scales] for g in groups], dtype=float)
    values = [v for v in grid.flat if finite(v)]
    log = spans_decades(values) and all(v > 0 for v in values)
    norm = LogNorm(min(values), max(values)) if log else Normalize(min(values, default=0), max(values, default=1))
    fig, ax = plt.subplots(figsize=(3.5 + 1.4 * len(scales), 1.5 + 0.42 * len(groups)), constrained_layout=True)
    image = ax.imshow(np.ma.masked_invalid(grid), aspect="auto", cmap="viridis", norm=norm)
    for r, c in np.ndindex(grid.shape):
        value = grid[r, c]
        if finite(value):
            bright = norm(value) > 0.6
            ax.text(c, r, f"{value:.2e}", ha="center", va="center", fontsize=8,
                    color="black" if bright else "white")
    ax.set_xticks(range(len(scales)))
    ax.set_xticklabels([fmt_scale(s) for s in scales])
    ax.set_yticks(range(len(groups)))
    ax.set_yticklabels(groups)
    ax.grid(False)
    ax.set_xlabel(scale_axis_label(experiments))
    ax.set_ylabel("noise group")
    ax.set_title("Experiment 2: α per noise group and scale")
    bar = fig.colorbar(image, ax=ax, label="α = σ²/τ²" + (" (log colour scale)" if log else ""))
    if log:  # a log colour bar spanning one or two decades would otherwise show a single label
        ticks = np.geomspace(min(values), max(values), 5)
        bar.set_ticks(ticks)
        bar.set_ticklabels([f"{t:.2g}" for t in ticks])
        bar.minorticks_off()
    save(plt, fig, path)


def heatmap_row_key(group):
    """layer:N rows first (by N), then the named groups."""
    kind, index, name = group_sort_key(group)
    return ({1: 0, 0: 1}.get(kind, 2), index, name)



FIGURES = (
    Figure("layer_sensitivity", "layer_sensitivity.png", plot_layer_sensitivity),
    Figure("layer_heatmap", "layer_heatmap.png", plot_layer_heatmap),
)
