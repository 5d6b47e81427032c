"""Report sections: one module per section name; a family of results.json names its section.

find("weight_noise") is this package's weight_noise module; a name without a module here gets
generic (a counters table), so a family the report does not know yet still renders. Every section
module has the same interface:

  INSTANCE             {field: "number" | "string"}: the instance fields each entry of the family
                       must have (checked when results.json is loaded)
  FIGURES              (Figure, ...): the figures it draws (their files are unique across sections)
  sort_key(entry)      the order of the family's entries
  check(path, entries) raises ReportError on details its figures or tables cannot use
  title(family)        the heading of its part of summary.md ("## ...")
  summary(view)        the rest of that part, as a list of Markdown lines (called only when the run
                       has results of the family; without any, the summary says so under the title)

Adding an experiment is adding its module here (and its family in bench's results.json).
"""

import importlib
import importlib.util
import pkgutil
import re
from dataclasses import dataclass, field

GENERIC = "generic"


@dataclass(frozen=True)
class Figure:
    key: str                # the section's name for it (summary links use it)
    file: str               # file name in the output directory
    draw: object            # draw(plt, view, path)
    missing: object = None  # missing(view) -> why it cannot be drawn, or None


@dataclass
class View:
    """What a section renders: one family of the run, the figures drawn of it ({key: file name})
    and the run-wide options."""
    experiments: object
    family: object
    figures: dict = field(default_factory=dict)
    cpu_spread: object = None
    profile: str = None

    @property
    def entries(self):
        return self.family.entries


def part(view):
    """The family's part of summary.md: its section's title, then its summary, or a line saying the
    run has no results of the family."""
    module, family = view.family.module, view.family
    body = module.summary(view) if family.entries else [f"No {family.name} results in this run.", ""]
    return [module.title(family), ""] + body


def find(section):
    """The module rendering `section`: sections/<section>.py, else the generic one."""
    if isinstance(section, str) and re.fullmatch(r"[a-z][a-z0-9_]*", section) \
            and importlib.util.find_spec(f"{__name__}.{section}") is not None:
        return importlib.import_module(f"{__name__}.{section}")
    return importlib.import_module(f"{__name__}.{GENERIC}")


def modules():
    """Every section module of this package, by name."""
    return [find(info.name) for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name)]


def figure_files():
    """The files every section can draw."""
    return [figure.file for module in modules() for figure in module.FIGURES]
