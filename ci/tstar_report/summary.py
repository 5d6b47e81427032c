"""summary.md: provenance, each family's section (in results.json's order), figures, timings."""

import os

from .common import model_name
from .provenance import compute_profile, provenance_section
from .sections import View, part
from .timings import timings_section


def figures_section(made, skipped):
    lines = ["## Figures", ""]
    lines += [f"- [{name}]({name})" for figures in made.values() for name in figures.values()]
    lines += [f"- {name}: skipped ({reason})" for name, reason in skipped]
    return lines + [""]


def write_summary(experiments, timings, run_dir, out_dir, made, skipped, cpu_spread=None):
    """Writes out_dir/summary.md; `made` and `skipped` as figures.make_figures returns them."""
    lines = [f"# tstar report: {os.path.basename(os.path.abspath(run_dir))}", "",
             f"Reproduction of the notebook \"Optimal Temperature Scaling for Noisy Language Models\" with "
             f"{model_name(experiments)}. Every T* formula is a hypothesis here: the best temperature is "
             f"measured and each predictor is scored against it.", ""]
    if skipped:
        lines += ["**Skipped:** " + "; ".join(f"{name} ({reason})" for name, reason in skipped), ""]
    profile = compute_profile(experiments, timings.context)
    lines += provenance_section(experiments, run_dir, timings.context, cpu_spread)
    for family in experiments.families:
        lines += part(View(experiments, family, made.get(family.name, {}), cpu_spread, profile))
    lines += figures_section(made, skipped)
    lines += timings_section(timings.runs)
    path = os.path.join(out_dir, "summary.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    return path
