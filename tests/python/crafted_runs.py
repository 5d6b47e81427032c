"""Crafted Google Benchmark JSON files for the ci/ tools' tests, and running those tools.

write_run(directory, benchmarks) writes <directory>/benchmark.json as bench would: one
"iteration" row per repetition (with every counter) followed by mean/median/stddev aggregate rows,
which the readers must ignore. `benchmarks` maps a run name to a Bench.
"""

import dataclasses
import json
import os
import statistics
import subprocess
import sys

SOURCE_DIR = os.environ.get("TSTAR_SOURCE_DIR",
                            os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
CI_DIR = os.path.join(SOURCE_DIR, "ci")
sys.path.insert(0, CI_DIR)


@dataclasses.dataclass
class Bench:
    times: list                                              # real_time of each repetition
    statistics: dict = dataclasses.field(default_factory=dict)  # the same in every repetition
    rates: dict = dataclasses.field(default_factory=dict)       # counter -> value per repetition
    time_unit: str = "ms"
    error: str = None                                        # every repetition failed with this
    per_repetition: dict = dataclasses.field(default_factory=dict)  # statistic -> value per repetition


def _iteration_rows(name, bench):
    rows = []
    for index, time in enumerate(bench.times):
        row = {"name": name, "run_name": name, "run_type": "iteration",
               "repetitions": len(bench.times), "repetition_index": index, "threads": 1,
               "iterations": 3, "real_time": time, "cpu_time": time * 0.99,
               "time_unit": bench.time_unit}
        if bench.error:
            row.update(error_occurred=True, error_message=bench.error)
        row.update(bench.statistics)
        row.update({counter: values[index] for counter, values in bench.per_repetition.items()})
        row.update({counter: values[index] for counter, values in bench.rates.items()})
        rows.append(row)
    return rows


def _aggregate_rows(name, bench):
    rows = []
    spread = statistics.stdev(bench.times) if len(bench.times) > 1 else 0.0
    for aggregate, time in (("mean", statistics.mean(bench.times)),
                            ("median", statistics.median(bench.times)), ("stddev", spread)):
        rows.append({"name": f"{name}_{aggregate}", "run_name": name, "run_type": "aggregate",
                     "aggregate_name": aggregate, "aggregate_unit": "time", "iterations": 3,
                     "real_time": time, "cpu_time": time, "time_unit": bench.time_unit,
                     **{c: 12345.0 for c in bench.statistics}})   # readers must not look here
    return rows


def write_run(directory, benchmarks, context=None):
    """Write <directory>/benchmark.json for {run name: Bench}; returns the directory. `context`:
    more keys for its context object (tstar_* provenance)."""
    os.makedirs(directory, exist_ok=True)
    rows = []
    for name, bench in benchmarks.items():
        rows += _iteration_rows(name, bench)
        if len(bench.times) > 1 and not bench.error:
            rows += _aggregate_rows(name, bench)
    document = {"context": {"date": "2026-11-28T00:00:00+00:00", "tstar_seeds": "[0,1]", **(context or {})},
                "benchmarks": rows}
    with open(os.path.join(directory, "benchmark.json"), "w", encoding="utf-8") as f:
        json.dump(document, f, indent=1)   # NaN is written bare, as Google Benchmark does
    return directory


def run_tool(tool, *args):
    """Run ci/<tool> with `args`: the CompletedProcess (text stdout/stderr)."""
    return subprocess.run([sys.executable, os.path.join(CI_DIR, tool), *map(str, args)],
                          capture_output=True, text=True, timeout=120)
