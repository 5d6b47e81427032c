"""Best-temperature helpers shared by the sections: whether a best T is resolved, the T* predictors,
and alpha on the model-dtype logits (the rounding floor)."""

import math

from .common import NOT_RESOLVED, finite, fmt

# alpha on the model-dtype logits more than this many times alpha: their rounding dominates it.
ROUNDING_FLOOR_RATIO = 2.0
ROUNDING_MARK = "rounding floor"


def resolution_bound(entry):
    """max(best T 95% CI half-width, best_T_resolution) of what the entry has (Layer: no CI over
    seeds, the resolution only); NaN when it has neither (older runs' Layer entries)."""
    known = [v for v in (entry.get("best_T_ci95"), entry.get("best_T_resolution")) if finite(v)]
    return max(known) if known else math.nan


def not_resolved(entry):
    """True when |best T − 1| <= resolution_bound at a scale > 0: the run cannot tell this best T
    from 1. False when it can, when the bound is unknown, and at scale 0 (no noise: best T is 1)."""
    bound, best_T = resolution_bound(entry), entry.get("best_T")
    return entry.scale > 0 and finite(bound) and finite(best_T) and abs(best_T - 1.0) <= bound


def not_resolved_text(entry):
    return f" ({NOT_RESOLVED})" if not_resolved(entry) else ""


def predictors_of(entries):
    """[(key, formula)] of the T* predictors: keys from the T_<key>/err_<key> counter pairs, in the
    order and with the formulas of details.predictors where present."""
    if not entries:
        return []
    counters = entries[0].counters
    keys = [name[2:] for name in counters if name.startswith("T_") and f"err_{name[2:]}" in counters]
    formulas = {}
    listed = entries[0].details.get("predictors")
    if isinstance(listed, list):
        order = [p.get("key") for p in listed if isinstance(p, dict)]
        formulas = {p.get("key"): str(p.get("formula")) for p in listed if isinstance(p, dict)}
        keys.sort(key=lambda k: order.index(k) if k in order else len(order))
    return [(key, formulas.get(key, key)) for key in keys]


def pretty_formula(formula):
    """Plain-text formula with Greek letters and superscripts, for legends."""
    for plain, nice in (("sqrt", "√"), ("alpha", "α"), ("sigma^2", "σ²"), ("sum p^2", "Σp²")):
        formula = formula.replace(plain, nice)
    return formula


def logits_dtypes(experiments):
    """(dtype the statistics' logits were computed in, the model's dtype); None where the run does
    not say (runs before fp32 logits computed them in the model dtype)."""
    settings = experiments.doc.get("settings", {})
    model = experiments.doc.get("provenance", {}).get("model", {})
    model_dtype = settings.get("dtype") or (model.get("dtype") if isinstance(model, dict) else None)
    logits = settings.get("logits_dtype")
    return (str(logits) if logits else None), (str(model_dtype) if model_dtype else None)


def alpha_header(logits):
    return f"α ({logits} logits) ± 95% CI" if logits else "α ± 95% CI"


def has_model_logits_alpha(entries):
    return any(finite(e.get("alpha_model_logits")) for e in entries)


def model_logits_ratio(entry):
    alpha, model = entry.get("alpha"), entry.get("alpha_model_logits")
    return model / alpha if finite(alpha) and finite(model) and alpha > 0 else math.nan


def model_logits_header(model_dtype):
    return f"α ({model_dtype or 'model-dtype'} logits) (ratio to α)"


def model_logits_cell(entry):
    """'4.4e-05 (9.7×, rounding floor)': alpha on the model-dtype logits and its ratio to alpha,
    marked where the ratio is above ROUNDING_FLOOR_RATIO."""
    ratio = model_logits_ratio(entry)
    text = fmt(entry.get("alpha_model_logits"))
    if finite(ratio):
        text += f" ({fmt(ratio, 3)}×" + (f", {ROUNDING_MARK})" if ratio > ROUNDING_FLOOR_RATIO else ")")
    return text


def rounding_floor_note(entries, logits, model_dtype):
    model_dtype = model_dtype or "model-dtype"
    floored = [e for e in entries if finite(model_logits_ratio(e)) and model_logits_ratio(e) > ROUNDING_FLOOR_RATIO]
    return (f"α ({model_dtype} logits): α of the same forward computed on the logits in the model's dtype "
            f"({model_dtype}) instead of {logits or 'the statistics dtype'}. Where it is far above α (ratio > "
            f"{ROUNDING_FLOOR_RATIO:g}, marked \"{ROUNDING_MARK}\": {len(floored)} of {len(entries)} rows), the "
            f"{model_dtype} logits' rounding dominates α: measured on them, α would show the rounding, not the "
            f"weight noise.")
