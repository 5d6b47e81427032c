"""Errors, number formatting and Markdown helpers shared by the report's modules."""

import math
import os


class ReportError(Exception):
    """Input the report cannot use; the message is the one line shown to the user."""


# A best T within max(CI95, search resolution) of 1 cannot be told from 1.
NOT_RESOLVED = "not resolved"
ALPHA_LABEL = "α = σ²/τ² (logit noise-to-signal, dimensionless)"


def finite(x):
    return isinstance(x, (int, float)) and math.isfinite(x)


def finite_mean(values):
    values = [v for v in values if finite(v)]
    return sum(values) / len(values) if values else math.nan


def fmt(x, digits=4):
    """`digits` significant digits; 'n/a' for a missing or non-finite value."""
    return f"{x:.{digits}g}" if finite(x) else "n/a"


def fmt_T(T, decimals=4):
    """Temperatures near 1 need fixed decimals: 0.99995 and 1 must not both print as '1'."""
    return f"{T:.{decimals}f}" if finite(T) else "n/a"


def fmt_scale(scale):
    return f"{scale:g}"


def count_text(value):
    return f"{int(value):,}" if finite(value) else "n/a"


def list_text(values):
    return ", ".join(fmt_scale(v) for v in values) if isinstance(values, list) else "n/a"


def spans_decades(values):
    """Log axis when the positive values span at least a factor of 10."""
    positive = [v for v in values if finite(v) and v > 0]
    return len(positive) >= 2 and max(positive) / min(positive) >= 10


def table(header, rows):
    """Markdown table; a '|' inside a cell is escaped so it does not split the cell."""
    def line(cells):
        return "| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |"
    return [line(header), "|" + "|".join("---" for _ in header) + "|"] + [line(row) for row in rows]


def figure_link(figures, key, title):
    return [f"![{title}]({figures[key]})", ""] if key in figures else []


def number_list(path, entry, key):
    values = entry.details.get(key)
    if not isinstance(values, list) or not all(isinstance(v, (int, float)) for v in values):
        raise ReportError(f"{path}: {entry.name}: details.{key} is not a list of numbers")
    return [float(v) for v in values]


def model_name(experiments):
    model = experiments.doc.get("provenance", {}).get("model", {})
    name = model.get("model") if isinstance(model, dict) else model
    return os.path.basename(str(name).rstrip("/")) if name else "model ?"


def seeds_of(experiments):
    seeds = experiments.doc.get("provenance", {}).get("seeds") or experiments.doc.get("settings", {}).get("seeds")
    return seeds if isinstance(seeds, list) else []
