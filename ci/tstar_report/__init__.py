"""ci/report as a package: figures and a Markdown summary of one tstar bench run.

  load.py        results.json -> Experiments: the families (results.json "families") and their
                 entries (each result's "family" and "instance"), checked
  legacy.py      the one adapter for runs written before "families": family and instance parsed
                 from the benchmark name
  sections/      one module per report section, found by the name a family's "section" gives
                 (sections/__init__.py describes the interface; generic.py renders any other)
  common.py      errors, number formatting, Markdown helpers
  temperature.py best-T helpers shared by sections (resolution, predictors, rounding floor)
  predictors.py  the T* predictors' ranking against the measured best T (weight_noise's second part)
  columns.py     the optional CPU-spread and model-dtype alpha columns of the alpha / best T tables
  plotting.py    matplotlib import and axis helpers
  spread.py      the CPU spread file (ci/spread) beside alpha and best T
  provenance.py  the provenance table
  timings.py     benchmark.json: the timings table
  figures.py     draws every section's figures
  summary.py     writes summary.md

Adding an experiment: bench writes a family with "section": "<name>" into results.json, and
sections/<name>.py renders it.
"""
