"""benchmark.json of the run: its context and the timings table."""

import math
import os
import statistics
from dataclasses import dataclass, field

import tstar_results as tr

from .common import ReportError, finite, fmt, table


@dataclass
class Timings:
    """benchmark.json of the run, when there is one."""
    context: dict = field(default_factory=dict)
    runs: dict = None  # {run_name: tstar_results.BenchmarkRun}; None without benchmark.json


def load_timings(run_dir):
    path = os.path.join(run_dir, "benchmark.json")
    if not os.path.exists(path):
        return Timings()
    try:
        context, runs = tr.load_context(path), tr.load_benchmarks(path)
    except tr.ResultsError as e:
        raise ReportError(str(e)) from None
    return Timings(context=context if isinstance(context, dict) else {}, runs=runs)


def fmt_time(ns):
    if not finite(ns):
        return "n/a"
    for unit, size in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= size:
            return f"{ns / size:.3g} {unit}"
    return f"{ns:.3g} ns"


def timings_section(runs):
    lines = ["## Timings (benchmark.json)", ""]
    if runs is None:
        return lines + ["No benchmark.json in the run directory: no timings.", ""]
    rows = []
    for run in runs.values():
        times = sorted(run.real_time_ns)
        rates = "; ".join(f"{k} {fmt(statistics.median(v), 4)}" for k, v in sorted(run.rates.items()))
        rows.append((f"`{run.name}`", len(times), fmt_time(run.median_time_ns()),
                     f"{fmt_time(times[0])} – {fmt_time(times[-1])}" if times else "n/a",
                     fmt_time(statistics.median(run.cpu_time_ns) if run.cpu_time_ns else math.nan), rates or "",
                     "; ".join(sorted(set(run.errors))) or ""))
    lines += table(("benchmark", "repetitions", "median real time", "min – max", "median CPU time",
                    "median rates", "errors"), rows)
    return lines + ["", "Times are per iteration (Google Benchmark). For the experiment families, a name "
                        "ending in `/manual_time` (bench --timing protocol, the default) gives the wall time "
                        "of the benchmark's statistics computation (its protocol cost), one ending in "
                        "`/real_time` (--timing cycles) one cycle of its unit of work (inject → forward → "
                        "restore).", ""]
