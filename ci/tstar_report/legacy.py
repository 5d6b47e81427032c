"""LEGACY ADAPTER: results.json written before bench named its families.

Runs made before results.json had "families" (and each result its "family" and "instance") name a
result only by its benchmark name, "<Family>/<part>/.../scale:<s>". adapt() turns such a document
into the current format, parsing family and instance from the name as the report always did. It is
the only place that parses benchmark names; load.py calls it once, for documents without
"families", and nothing else uses it.
"""

import math

from .common import ReportError

# The families and sections of those runs, in the order the report showed them.
FAMILIES = (
    {"name": "WeightNoise", "pattern": "WeightNoise/scale:<s>", "section": "weight_noise",
     "description": "weight noise -> logit noise -> best temperature"},
    {"name": "Layer", "pattern": "Layer/<group>/scale:<s>", "section": "layer",
     "description": "noise in one group of weights at a time"},
    {"name": "Evolution", "pattern": "Evolution/prompt:<p>/scale:<s>", "section": "evolution",
     "description": "logit noise during greedy generation"},
    {"name": "TempSweep", "pattern": "TempSweep/scale:<s>", "section": "temp_sweep",
     "description": "KL and P(correct) over a grid of temperatures"},
)


def adapt(path, doc):
    """A copy of `doc` in the current format: the legacy FAMILIES, and every result of one of them
    with "family" and "instance" parsed from its name (results of other families are left out: the
    report never showed them)."""
    known = {f["name"] for f in FAMILIES}
    results = {}
    for name, value in doc["results"].items():
        family, instance = family_and_instance(path, name, value)
        if family in known:
            results[name] = dict(value, family=family, instance=instance) if isinstance(value, dict) else value
    return dict(doc, families=[dict(f) for f in FAMILIES], results=results)


def family_and_instance(path, name, value):
    """('Layer', {'group': 'attention', 'scale': 0.02}) from 'Layer/attention/scale:0.02': the family
    before the first '/', then 'scale:<s>' and 'prompt:<p>' parts, the other parts joined as the
    group; a numeric 'scale' counter overrides the name's scale."""
    parts = name.split("/")
    instance, group, scale = {}, [], math.nan
    for part in parts[1:]:
        key, _, text = part.partition(":")
        if key == "scale":
            scale = parse_number(path, name, text)
        elif key == "prompt":
            instance["prompt"] = int(parse_number(path, name, text))
        else:
            group.append(part)
    if group:
        instance["group"] = "/".join(group)
    counters = value.get("counters") if isinstance(value, dict) else None
    if isinstance(counters, dict) and isinstance(counters.get("scale"), (int, float)):
        scale = float(counters["scale"])
    if parts[0] in {f["name"] for f in FAMILIES} and not math.isfinite(scale):
        raise ReportError(f"{path}: results['{name}'] has no scale (neither a scale counter nor /scale:<s>)")
    if math.isfinite(scale):
        instance["scale"] = scale
    return parts[0], instance


def parse_number(path, name, text):
    try:
        return float(text)
    except ValueError:
        raise ReportError(f"{path}: results['{name}']: '{text}' is not a number") from None
