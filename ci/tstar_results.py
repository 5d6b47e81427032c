"""Reading what one `bench` run leaves in its run directory (results/runs/<run id>/):

  benchmark.json  Google Benchmark's JSON: every repetition's times and all counters
  results.json    tstar's experiment curves, per-seed/per-prompt values and provenance

Shared by ci/report, ci/compare, ci/export and ci/dashboard. Standard library only.

Counter kinds. Every user counter of a benchmark is a *statistic* (deterministic from seed and
inputs, compared exactly by the reproducibility gate) unless its name ends in `_per_s` or
`_per_second`: those are rates derived from the measured time (tokens_per_s, items_per_second)
and are as noisy as the time itself. bench names its counters by this rule.
"""

import json
import math
import os
import statistics

RATE_SUFFIXES = ("_per_s", "_per_second")

# Fields Google Benchmark 1.7.1 writes for every run; everything else in a run is a user counter.
GOOGLE_BENCHMARK_FIELDS = frozenset({
    "name", "family_index", "per_family_instance_index", "run_name", "run_type", "repetitions",
    "repetition_index", "threads", "iterations", "real_time", "cpu_time", "time_unit",
    "aggregate_name", "aggregate_unit", "error_occurred", "error_message", "label",
    "big_o", "rms", "complexity_n",
})

NANOSECONDS_PER_UNIT = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


class ResultsError(Exception):
    """A run file that is missing, not JSON, or not in the expected shape (message names the file)."""


def is_rate_counter(name):
    return name.endswith(RATE_SUFFIXES)


def load_json(path):
    """JSON from `path`; Google Benchmark writes bare NaN, which Python's json accepts."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ResultsError(f"{path}: cannot read: {e}") from None
    except json.JSONDecodeError as e:
        raise ResultsError(f"{path}: not valid JSON: {e}") from None


class BenchmarkRun:
    """All repetitions of one benchmark (one run_name) from a Google Benchmark JSON file."""

    def __init__(self, name):
        self.name = name
        self.time_unit = "ns"    # the unit Google Benchmark printed its times in (ns, us, ms, s)
        self.real_time_ns = []   # one per repetition, per iteration
        self.cpu_time_ns = []
        self.statistics = {}     # counter -> value (identical in every repetition when reproducible)
        self.rates = {}          # counter -> [value per repetition]
        self.errors = []         # error messages of repetitions that failed
        self.inconsistent = set()  # statistics whose value differs between repetitions

    @property
    def family(self):
        return self.name.split("/", 1)[0]

    def median_time_ns(self):
        return statistics.median(self.real_time_ns) if self.real_time_ns else math.nan


def _same(a, b):
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def load_benchmarks(path):
    """{run_name: BenchmarkRun} from a Google Benchmark JSON file (or a run directory holding
    benchmark.json), in file order. Aggregate rows (mean, median, stddev, cv) are ignored: they are
    recomputed from the repetitions, which is what a statistical test needs."""
    if os.path.isdir(path):
        path = os.path.join(path, "benchmark.json")
    doc = load_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list):
        raise ResultsError(f"{path}: not a Google Benchmark JSON file (no 'benchmarks' list)")
    runs = {}
    for index, row in enumerate(doc["benchmarks"]):
        if not isinstance(row, dict) or "name" not in row:
            raise ResultsError(f"{path}: benchmarks[{index}] has no 'name'")
        if row.get("run_type", "iteration") != "iteration":
            continue
        name = row.get("run_name", row["name"])
        run = runs.setdefault(name, BenchmarkRun(name))
        if row.get("error_occurred"):
            run.errors.append(str(row.get("error_message", "error")))
            continue
        unit = row.get("time_unit", "ns")
        if unit not in NANOSECONDS_PER_UNIT:
            raise ResultsError(f"{path}: {name}: unknown time_unit '{unit}'")
        run.time_unit = unit
        try:
            run.real_time_ns.append(float(row["real_time"]) * NANOSECONDS_PER_UNIT[unit])
            run.cpu_time_ns.append(float(row["cpu_time"]) * NANOSECONDS_PER_UNIT[unit])
        except (KeyError, TypeError, ValueError):
            raise ResultsError(f"{path}: {name}: missing or non-numeric real_time/cpu_time") from None
        first = len(run.real_time_ns) == 1
        for key, value in row.items():
            if key in GOOGLE_BENCHMARK_FIELDS or not isinstance(value, (int, float)):
                continue
            value = float(value)
            if is_rate_counter(key):
                run.rates.setdefault(key, []).append(value)
            elif first:
                run.statistics[key] = value
            elif key not in run.statistics or not _same(run.statistics[key], value):
                run.inconsistent.add(key)
    return runs


def load_context(path):
    """The 'context' object of a Google Benchmark JSON file (date, host, tstar_* provenance)."""
    if os.path.isdir(path):
        path = os.path.join(path, "benchmark.json")
    doc = load_json(path)
    return doc.get("context", {}) if isinstance(doc, dict) else {}


def load_experiments(run_dir):
    """results.json of a run directory: {'provenance', 'settings', 'results': {name: {counters, details}}}."""
    path = os.path.join(run_dir, "results.json") if os.path.isdir(run_dir) else run_dir
    doc = load_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), dict):
        raise ResultsError(f"{path}: not a tstar results.json (no 'results' object)")
    return doc
