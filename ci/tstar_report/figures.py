"""Every section's figures, drawn into the output directory."""

import os

from .sections import View


def make_figures(plt, experiments, out_dir):
    """({family name: {figure key: file name}} of the figures drawn, [(file name, reason)] of those
    skipped), each family's figures in its section's order, families in results.json's order. A
    section rendering a second family names that family's files <family>_<file>."""
    made, skipped, used = {}, [], set()
    for family in experiments.families:
        view = View(experiments, family)
        made[family.name] = {}
        for figure in family.module.FIGURES:
            name = figure.file if figure.file not in used else f"{family.name.lower()}_{figure.file}"
            used.add(name)
            reason = (f"no {family.name} results in this run" if not family.entries
                      else figure.missing(view) if figure.missing else None)
            if reason:
                skipped.append((name, reason))
                continue
            figure.draw(plt, view, os.path.join(out_dir, name))
            made[family.name][figure.key] = name
    return made, skipped
