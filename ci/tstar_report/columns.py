"""The optional columns the alpha / best T tables share (WeightNoise and Layer sections): the CPU
spread beside alpha and best T (with --cpu-spread), and alpha on the model-dtype logits (when the
run has alpha_model_logits)."""

from .spread import cpu_spread_cell, cpu_spread_header
from .temperature import model_logits_cell, model_logits_header

SPREAD_COLUMN = 4   # after the best T column


def add_optional_cells(row, entry, view, floor):
    """Adds the entry's optional cells to `row`; True when its CPU spread marks the row."""
    marked = False
    if view.cpu_spread:
        cell, marked = cpu_spread_cell(entry, view.cpu_spread, view.family.name)
        row.insert(SPREAD_COLUMN, cell)
    if floor:
        row.append(model_logits_cell(entry))
    return marked


def add_optional_headers(header, view, floor, model_dtype):
    if view.cpu_spread:
        header.insert(SPREAD_COLUMN, cpu_spread_header(view.profile))
    if floor:
        header.append(model_logits_header(model_dtype))
    return header
