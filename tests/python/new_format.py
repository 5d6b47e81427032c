"""results.json in the format bench writes since it names its families: a top-level "families"
list and, in every result, "family" and "instance". new_format(doc) turns a results.json written
before that (the committed baseline, test_report's synthetic runs) into it, as bench would have
written the same run; it reads each result's family and instance from its counters and from the
fixed layout of the old names, so the report's own legacy adapter is not used to make it."""

import copy
import os
import sys

sys.path.insert(0, os.path.join(os.environ.get("TSTAR_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", ".."),
                                "ci"))
from tstar_report import legacy  # noqa: E402

# The families bench writes are the four the report always knew (their metadata only: the
# conversion below does not use the adapter).
FAMILIES = [dict(f) for f in legacy.FAMILIES]


def instance_of(family, name, counters):
    """What bench writes as "instance" for a result of `family`."""
    instance = {"scale": counters["scale"]}
    if family == "Layer":        # Layer/<group>/scale:<s>; a group may hold ':' (layer:3)
        instance = {"group": name[len("Layer/"):name.rindex("/scale:")], **instance}
    elif family == "Evolution":  # Evolution/prompt:<p>/scale:<s>
        instance = {"prompt": int(name[len("Evolution/prompt:"):name.rindex("/scale:")]), **instance}
    return instance


def new_format(doc, families=None):
    """A deep copy of `doc` with "families" (`families`, default the four experiments) and each
    result's "family" and "instance"."""
    doc = copy.deepcopy(doc)
    doc["families"] = copy.deepcopy(FAMILIES if families is None else families)
    for name, value in doc["results"].items():
        family = next(f["name"] for f in FAMILIES if name.startswith(f["name"] + "/"))
        value["family"] = family
        value["instance"] = instance_of(family, name, value["counters"])
    return doc


def renamed(doc, name_of):
    """`doc` with every result under the name name_of(old name, value): the report must take family
    and instance from the fields, not from the name."""
    doc = copy.deepcopy(doc)
    doc["results"] = {name_of(name, value): value for name, value in doc["results"].items()}
    return doc
