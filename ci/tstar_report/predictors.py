"""The T* predictors against the measured best T: their ranking, the per-pair view and the
bootstrap intervals of their errors (the WeightNoise section's "Which T* predictor" part)."""

from dataclasses import dataclass

from .common import ReportError, figure_link, finite, finite_mean, fmt, fmt_scale, number_list, table
from .temperature import not_resolved, predictors_of

POOLED_TEXT = "pooled as the objective: ratio of sums over (seed, prompt) pairs"


@dataclass
class PredictorScore:
    """One predictor's errors over the scales ranked (err = T_<key> − best T, both pooled)."""
    key: str
    formula: str
    mean_abs: float
    max_abs: float
    bias: float         # mean err
    wins: int           # scales where this predictor is the closest
    scales: int         # scales counted
    pair_rms: float     # mean over the scales of pair_rms_<key> (NaN in runs without it)
    pair_bias: float    # mean over the scales of pair_bias_<key>


def predictor_ranking(entries, predictors, rank=True):
    """[PredictorScore] over `entries` (the caller picks the scales: those where best T is resolved),
    smallest mean |err| first; in predictor order when not `rank`."""
    rows = []
    for key, formula in predictors:
        errors = [e.get(f"err_{key}") for e in entries]
        errors = [x for x in errors if finite(x)]
        if not errors:
            continue
        wins = sum(1 for e in entries if closest_predictor(e, predictors) == key)
        rows.append(PredictorScore(key, formula, sum(abs(x) for x in errors) / len(errors),
                                   max(abs(x) for x in errors), sum(errors) / len(errors), wins, len(errors),
                                   finite_mean(e.get(f"pair_rms_{key}") for e in entries),
                                   finite_mean(e.get(f"pair_bias_{key}") for e in entries)))
    if rank:
        rows.sort(key=lambda row: row.mean_abs)
    return rows


def closest_predictor(entry, predictors):
    errors = [(abs(entry.get(f"err_{key}")), key) for key, _ in predictors if finite(entry.get(f"err_{key}"))]
    return min(errors)[1] if errors else None


def pair_predictions(path, entry):
    """(each pair's own best T, [(key, formula, each pair's prediction)]) of an entry from
    details.pair_best_T and details.predictors[].pair_values (same pairs, same order); ([], []) when
    the run has no per-pair values (runs before the pooled predictors)."""
    if "pair_best_T" not in entry.details:
        return [], []
    measured = number_list(path, entry, "pair_best_T")
    listed = entry.details.get("predictors")
    predicted = []
    for index, p in enumerate(listed if isinstance(listed, list) else []):
        if not isinstance(p, dict) or "pair_values" not in p:
            continue
        values = p["pair_values"]
        if not isinstance(values, list) or not all(isinstance(v, (int, float)) for v in values):
            raise ReportError(f"{path}: {entry.name}: details.predictors[{index}].pair_values is not a list "
                              f"of numbers")
        if len(values) != len(measured):
            raise ReportError(f"{path}: {entry.name}: details.predictors[{index}].pair_values has "
                              f"{len(values)} values, details.pair_best_T {len(measured)}")
        key = str(p.get("key", index))
        predicted.append((key, str(p.get("formula", key)), [float(v) for v in values]))
    return measured, predicted


def predictors_of_pairs(entry, predicted):
    """`predicted` in the order of the entry's predictors (T_<key> counters), unknown keys last."""
    order = [key for key, _ in predictors_of([entry])]
    return sorted(predicted, key=lambda p: order.index(p[0]) if p[0] in order else len(order))


def pair_figure_entry(entries):
    """(entry, resolved): the WeightNoise entry the per-pair figure shows, the largest scale where
    best T is resolved, else the largest scale > 0 (resolved False); (None, False) when no entry at a
    scale > 0 has per-pair values."""
    with_pairs = [e for e in entries if e.scale > 0 and pair_predictions("", e)[1]]
    resolved = [e for e in with_pairs if not not_resolved(e)]
    if resolved:
        return max(resolved, key=lambda e: e.scale), True
    return (max(with_pairs, key=lambda e: e.scale), False) if with_pairs else (None, False)


def pooling_text(entries):
    """How the run pooled each predictor over the (seed, prompt) pairs (details.predictors[].pooling)."""
    listed = entries[0].details.get("predictors") if entries else None
    pooled = isinstance(listed, list) and any(isinstance(p, dict) and p.get("pooling") for p in listed)
    if pooled:
        return (f"Predictors are {POOLED_TEXT}: T = f(Σ numerator / Σ denominator) over the pairs, as the mean "
                f"KL pools them (not a mean of per-pair predictions).")
    return ("This run does not record how its predictors pool the (seed, prompt) pairs: runs before the "
            "pooled predictors report the mean of the per-pair predictions.")


def pair_view_section(entries, predictors, ranked):
    """The per-pair view (pair_rms_<key>, pair_bias_<key>) over `entries` in predictor order."""
    rows = [(f"`{row.formula}`", fmt(row.pair_rms, 3), fmt(row.pair_bias, 3), row.scales)
            for row in predictor_ranking(entries, predictors, rank=ranked)
            if finite(row.pair_rms) or finite(row.pair_bias)]
    if not rows:
        return []
    return ([f"Per-pair view over the {len(entries)} scale(s) > 0, in predictor order (not a ranking): each "
             "(seed, prompt) pair's prediction against that pair's own best T (from its own noise draw), the "
             "mean over the scales of pair_rms_<key> and pair_bias_<key>.", ""]
            + table(("predictor", "mean pair RMS err", "mean pair bias", "scales"), rows) + [""])


def pair_figure_text(entries, figures):
    """The per-pair figure's link and which scale it shows."""
    if not figures or "pair_prediction" not in figures:
        return []
    entry, resolved = pair_figure_entry(entries)
    return [f"Per-pair predictions at scale {fmt_scale(entry.scale)} ("
            + ("the largest scale where best T is resolved" if resolved else
               "best T is not resolved at any scale: the largest scale > 0")
            + "): each point is one (seed, prompt) pair, its own best T against a predictor's value for it; on "
              "the diagonal the prediction is exact.", ""] + figure_link(figures, "pair_prediction",
                                                                        "Per-pair predictions")


def bootstrap_error_section(entries, predictors):
    """Each scale's pooled error of every predictor with its cluster-bootstrap 95% interval
    (details.predictors[].error_ci95); empty for runs without the bootstrap."""
    def interval(entry, key):
        listed = entry.details.get("predictors")
        for p in listed if isinstance(listed, list) else []:
            if isinstance(p, dict) and p.get("key") == key and isinstance(p.get("error_ci95"), list) \
                    and len(p["error_ci95"]) == 2:
                return p["error_ci95"]
        return None
    shown = [e for e in entries if any(interval(e, key) for key, _ in predictors)]
    if not shown:
        return []
    rows = []
    for e in shown:
        cells = [fmt_scale(e.scale) + ("" if not not_resolved(e) else " (not resolved)")]
        for key, _ in predictors:
            ci = interval(e, key)
            err = e.get(f"err_{key}")
            cells.append(f"{fmt(err, 2)} [{fmt(ci[0], 2)}, {fmt(ci[1], 2)}]" if ci else fmt(err, 2))
        rows.append(cells)
    method = shown[0].details.get("bootstrap", {}).get("method", "cluster bootstrap over prompts x seeds")
    return ["", "Pooled error per scale with its 95% interval (" + str(method) + "; paired: every predictor "
            "is scored on the same resamples, so an interval that excludes another's point estimate separates "
            "them):", ""] + table(["scale"] + [f"`{formula}`" for _, formula in predictors], rows)


def predictor_section(family, figures=None):
    """Which predictor is closest to the measured best T, over the family's (WeightNoise) scales
    where best T is resolved."""
    entries = family.entries
    predictors = predictors_of(entries)
    lines = ["## Which T* predictor is closest to the measured best T", ""]
    scaled = [e for e in entries if e.scale > 0]
    if not predictor_ranking(scaled, predictors):
        return lines + [f"Not measurable in this run (needs {family.name} results at a scale > 0).", ""]
    resolved = [e for e in scaled if not not_resolved(e)]
    lines += [pooling_text(entries) + " err = predicted T − measured best T.", ""]
    unresolved = [fmt_scale(e.scale) for e in scaled if not_resolved(e)]
    if not resolved:
        lines += [f"Best T is not resolved at any scale: no ranking. At each of the {len(scaled)} scale(s) > 0, "
                  f"|best T − 1| ≤ max(95% CI half-width, search resolution): this run cannot tell the best T "
                  f"from 1, so ranking the predictors by their error against it would rank noise.", ""]
        lines += pair_view_section(scaled, predictors, ranked=False)
        lines += bootstrap_error_section(scaled, predictors)
        return lines + [""] + pair_figure_text(entries, figures)
    ranking = predictor_ranking(resolved, predictors)
    lines += [f"{len(resolved)} of {len(scaled)} scales resolved; predictors ranked on those only"
              + (f" (not resolved: scale {', '.join(unresolved)}, where |best T − 1| ≤ max(95% CI half-width, "
                 f"search resolution))." if unresolved else "."), ""]
    pair_columns = any(finite(row.pair_rms) or finite(row.pair_bias) for row in ranking)
    rows = []
    for rank, row in enumerate(ranking, 1):
        cells = [rank, f"`{row.formula}`", fmt(row.mean_abs, 3), fmt(row.max_abs, 3), fmt(row.bias, 3),
                 f"{row.wins} of {row.scales}"]
        rows.append(cells + ([fmt(row.pair_rms, 3), fmt(row.pair_bias, 3)] if pair_columns else []))
    lines += table(("rank", "predictor", "mean |err|", "max |err|", "mean err (bias)", "closest at")
                   + (("mean pair RMS err", "mean pair bias") if pair_columns else ()), rows)
    best = ranking[0]
    mean_ci = finite_mean(e.get("best_T_ci95") for e in resolved)
    spread = ranking[-1].mean_abs - ranking[0].mean_abs
    sqrt_rank = next((i for i, row in enumerate(ranking, 1) if row.key == "sqrt_1p_alpha"), None)
    lines += ["", f"Measured over {best.scales} resolved scale(s): `{best.formula}` is closest (mean |err| "
              f"{fmt(best.mean_abs, 3)}); "
              + (f"the notebook's `sqrt(1+alpha)` ranks {sqrt_rank} of {len(ranking)}. " if sqrt_rank else "")
              + f"The predictors' mean |err| differ by at most {fmt(spread, 2)}"
              + (f", against a mean best-T 95% CI half-width of {fmt(mean_ci, 2)}"
                 + (": within the seed uncertainty, so this run does not separate them." if spread < mean_ci
                    else ".") if finite(mean_ci) else ".")]
    if pair_columns:
        lines += ["", "Per-pair view (mean pair RMS err, mean pair bias): each (seed, prompt) pair's own "
                      "prediction against the pair's own best T (pair_rms_<key>, pair_bias_<key>), averaged over "
                      "the same scales; it shows how well a predictor follows single pairs, which the pooled "
                      "err averages away."]
    lines += bootstrap_error_section(scaled, predictors)
    return lines + [""] + pair_figure_text(entries, figures)

