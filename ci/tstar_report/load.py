"""Reading and checking results.json: its families and each family's entries.

results.json (as bench writes it) names its experiment families and the report section of each:

  "families": [{"name": "WeightNoise", "pattern": "WeightNoise/scale:<s>", "description": "...",
                "section": "weight_noise"}, ...]
  "results":  {"WeightNoise/scale:0.02": {"family": "WeightNoise", "instance": {"scale": 0.02},
                                          "counters": {...}, "details": {...}}, ...}

Family and instance come from those fields only; a run written before them (no "families") goes
through the legacy adapter (legacy.py) first. Each family is rendered by the section module its
"section" names (sections/); the module says which instance fields it needs and checks the details
its figures draw.
"""

import math
import os
from dataclasses import dataclass, field

import tstar_results as tr

from . import legacy, sections
from .common import ReportError


# What a section module's INSTANCE may ask of an instance field.
INSTANCE_TYPES = {"number": (int, float), "string": str}


@dataclass
class Entry:
    """One result of results.json: its family, its instance ({"scale": 0.02, ...}) and its values."""
    name: str
    family: str
    instance: dict
    counters: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)

    def get(self, counter):
        value = self.counters.get(counter)
        return float(value) if isinstance(value, (int, float)) else math.nan

    def _number(self, key, missing):
        value = self.instance.get(key)
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else missing

    @property
    def scale(self):
        return float(self._number("scale", math.nan))

    @property
    def prompt(self):
        return int(self._number("prompt", -1))

    @property
    def group(self):
        return str(self.instance.get("group", ""))


@dataclass
class Family:
    """A family of results.json's "families" with its entries and the section module rendering it."""
    name: str
    section: str
    module: object
    pattern: str = ""
    description: str = ""
    entries: list = field(default_factory=list)


@dataclass
class Experiments:
    path: str
    doc: dict
    families: list  # [Family] in results.json order

    def family(self, name):
        """The entries of the family called `name` ([] when the run has none)."""
        return next((f.entries for f in self.families if f.name == name), [])


def load_experiments(run_dir):
    path = os.path.join(run_dir, "results.json")
    try:
        doc = tr.load_experiments(path)
    except tr.ResultsError as e:
        raise ReportError(str(e)) from None
    for key in ("provenance", "settings"):
        if not isinstance(doc.get(key, {}), dict):
            raise ReportError(f"{path}: '{key}' is not an object")
    if "families" not in doc:
        doc = legacy.adapt(path, doc)
    families = read_families(path, doc["families"])
    by_name = {f.name: f for f in families}
    for name, value in doc["results"].items():
        entry = read_entry(path, name, value, by_name)
        by_name[entry.family].entries.append(entry)
    for family in families:
        family.entries.sort(key=family.module.sort_key)
        family.module.check(path, family.entries)
    return Experiments(path=path, doc=doc, families=families)


def read_families(path, listed):
    if not isinstance(listed, list):
        raise ReportError(f"{path}: 'families' is not a list")
    families = []
    for index, item in enumerate(listed):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) \
                or not isinstance(item.get("section"), str):
            raise ReportError(f"{path}: families[{index}] has no 'name' and 'section' strings")
        if any(f.name == item["name"] for f in families):
            raise ReportError(f"{path}: families[{index}]: family '{item['name']}' is listed twice")
        families.append(Family(name=item["name"], section=item["section"], module=sections.find(item["section"]),
                               pattern=str(item.get("pattern", "")), description=str(item.get("description", ""))))
    return families


def read_entry(path, name, value, families):
    if not isinstance(value, dict) or not isinstance(value.get("counters"), dict):
        raise ReportError(f"{path}: results['{name}'] has no 'counters' object")
    details = value.get("details", {})
    if not isinstance(details, dict):
        raise ReportError(f"{path}: results['{name}'].details is not an object")
    family, instance = value.get("family"), value.get("instance")
    if family not in families:
        raise ReportError(f"{path}: results['{name}'].family {family!r} is not a family of 'families'")
    if not isinstance(instance, dict):
        raise ReportError(f"{path}: results['{name}'].instance is not an object")
    for key, kind in families[family].module.INSTANCE.items():
        field_value = instance.get(key)
        if not isinstance(field_value, INSTANCE_TYPES[kind]) or isinstance(field_value, bool):
            raise ReportError(f"{path}: results['{name}'].instance has no {kind} '{key}' (section "
                              f"{families[family].section} needs it)")
    return Entry(name=name, family=family, instance=instance, counters=value["counters"], details=details)
