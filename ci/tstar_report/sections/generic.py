"""Any family whose section has no module here: its entries' instance and counters as one table,
so a run with a new experiment still renders (add sections/<section>.py to show it properly)."""

from ..common import fmt, table

INSTANCE = {}
FIGURES = ()


def sort_key(entry):
    return entry.name


def check(path, entries):
    """Nothing: the table shows the counters as they are."""


def title(family):
    return f"## {family.name}" + (f": {family.description}" if family.description else "")


def summary(view):
    family = view.family
    lines = [f"No section module renders \"{family.section}\" (results.json families: {family.name}): its results' "
             f"counters as they are" + (f"; benchmark names {family.pattern}" if family.pattern else "") + ".", ""]
    counters = list(dict.fromkeys(name for e in view.entries for name in e.counters))
    rows = [[f"`{e.name}`", ", ".join(f"{k} {v}" for k, v in e.instance.items()) or "-"]
            + [fmt(e.get(c)) for c in counters] for e in view.entries]
    return lines + table(["benchmark", "instance"] + counters, rows) + [""]
