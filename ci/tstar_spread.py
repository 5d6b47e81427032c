"""How far the statistics of a `bench` run move between CPUs: the spread behind ci/spread, and
reading it back for ci/compare --cross-machine and ci/report --cpu-spread.

The "reference" compute profile is bit-identical on every x86-64-v3 CPU; the "native" profile
(oneDNN bf16 / AMX on Intel, the libtorch fallback on AVX2-only CPUs) is not. Running the same
suite once per profile (or once on a machine whose native path equals the reference) and comparing
the statistic counters of the two runs measures that spread: per benchmark family (the benchmark
name before the first '/': WeightNoise, Layer, ...) and counter, the largest absolute difference
|a-b| and the largest relative difference |a-b|/max(|a|,|b|) over the family's benchmarks both runs
share. When the pairs come from several machines, the maxima are over all pairs. Times and the
*_per_s rates are not statistics and are ignored.

The spread is per family, not per counter alone: the relative spread of a counter is largest where
its value is smallest (alpha of one Layer group) and the absolute spread where it is largest, so one
global limit of "abs or rel" would let every other benchmark move by far more than it ever did.

A spread file is JSON:

  format         FORMAT (2); readers refuse a file of another format
  description    how it was made and what the tolerance means
  safety_factor  f
  pairs          [{"native": machine, "reference": machine, "shared_benchmarks": n}]
  by_family      {family: {counter: {"max_abs", "max_rel", "worst_benchmark", "benchmarks",
                 "differing"}}}: the measured spread
  tolerance      {family: {counter: {"rel": f * max_rel, "abs": f * max_abs}}} of that family
  counters       {counter: {"max_abs", "max_rel", "worst_benchmark", "benchmarks", "differing"}}
                 over all families: informational only, no tool reads it as a limit
  mismatches     [{"benchmark", "counter", "native", "reference"}]: NaN against a number (JSON null
                 stands for NaN); these are never tolerated

The tolerance rule (ci/compare --cross-machine): a statistic c of benchmark B in family F passes
when identical (NaN equals NaN), or when |a-b| <= tolerance[F][c].abs or
|a-b| <= tolerance[F][c].rel * max(|a|,|b|). No entry for F, or none for c in F, means c must be
bit-identical; NaN or an infinity against anything else never passes.

Standard library only.
"""

import json
import math
import os

import tstar_results

# The layout of the spread file this module writes and reads; a file of another format is refused.
FORMAT = 2

# Context keys of benchmark.json that must agree for two runs to be the same suite.
SETTINGS_KEYS = ("tstar_seeds", "tstar_scales", "tstar_detail_scales", "tstar_prompts_sha256",
                 "tstar_model")
# Machine summary: (name in the summary, key in results.json provenance, key in benchmark.json context).
MACHINE_KEYS = (
    ("cpu_model", "cpu_model", "tstar_cpu_model"),
    ("compute_profile", "compute_profile", "tstar_compute_profile"),
    ("openblas_core", "openblas_core", "tstar_openblas_core"),
    ("bf16_matmul_path", "bf16_matmul_path", "tstar_bf16_matmul_path"),
    ("libtorch_cpu_capability", "libtorch_cpu_capability", "tstar_libtorch_cpu_capability"),
    ("threads", "threads", "tstar_threads"),
    ("tstar_commit", "tstar_commit", "tstar_tstar_commit"),
)

DESCRIPTION = (
    f"Spread file format {FORMAT}, made by ci/spread from pairs of bench runs of the same suite: in "
    "each pair one run on the 'native' compute profile (oneDNN bf16 / AMX, or the libtorch fallback) "
    "and one on the 'reference' profile, which is bit-identical on every x86-64-v3 CPU. by_family: "
    "per benchmark family F (the benchmark name before the first '/') and statistic counter c (not "
    "*_per_s/*_per_second) present in both runs of a pair, over the family's shared benchmarks and "
    "all pairs (all machines), the largest absolute difference |a-b| (max_abs) and relative "
    "difference |a-b|/max(|a|,|b|) (max_rel; 0 when both are 0), and the benchmark with the largest "
    "relative difference. tolerance[F][c]: safety_factor times that family's max_rel (rel) and "
    "max_abs (abs). ci/compare --cross-machine passes statistic c of benchmark B in family F when "
    "identical, or |a-b| <= tolerance[F][c].abs, or |a-b| <= tolerance[F][c].rel * max(|a|,|b|); "
    "no entry for F, or none for c in F, means c must be bit-identical, and NaN against a number "
    "(listed in mismatches, NaN written as null) never passes. counters: the same maxima over all "
    "families, for information only (not a tolerance).")


class SpreadError(Exception):
    """Runs that cannot be compared, or a spread file in the wrong shape (message names the file)."""


# ---------------------------------------------------------------- the runs

def _results_path(run):
    """results.json beside a run's benchmark.json (run: a run directory or a benchmark.json)."""
    directory = run if os.path.isdir(run) else os.path.dirname(os.path.abspath(run))
    return os.path.join(directory, "results.json")


def machine_summary(run, context):
    """{run, date, host_name, cpu_model, compute_profile, openblas_core, tstar_commit} of a run from
    its results.json provenance (when there is one) and benchmark.json context; missing keys are
    omitted."""
    provenance = {}
    path = _results_path(run)
    if os.path.isfile(path):
        doc = tstar_results.load_experiments(path)
        provenance = doc.get("provenance") if isinstance(doc.get("provenance"), dict) else {}
    summary = {"run": run}
    for key in ("date", "host_name"):
        if isinstance(context.get(key), str):
            summary[key] = context[key]
    for name, provenance_key, context_key in MACHINE_KEYS:
        value = provenance.get(provenance_key, context.get(context_key))
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            summary[name] = value
    return summary


def _setting(value):
    """A context value as data: bench writes JSON text (lists, objects) into string context keys.
    The model's local path is left out when its weights are identified by digest: the same model
    in another cache directory is the same suite."""
    try:
        value = json.loads(value) if isinstance(value, str) else value
    except json.JSONDecodeError:
        return value
    if isinstance(value, dict) and "weight_files_sha256" in value:
        value = {k: v for k, v in value.items() if k != "model"}
    return value


def check_same_settings(native, native_context, reference, reference_context):
    """Raise SpreadError naming both runs when a settings key both contexts have differs."""
    differing = [key for key in SETTINGS_KEYS if key in native_context and key in reference_context
                 and _setting(native_context[key]) != _setting(reference_context[key])]
    if differing:
        shown = "; ".join(f"{key} {native_context[key]} vs {reference_context[key]}" for key in differing)
        raise SpreadError(f"{native} and {reference} are not the same suite ({shown}): "
                          f"a spread needs the same seeds, scales, prompts and model")


# ---------------------------------------------------------------- the spread

def difference(a, b):
    """(absolute, relative) difference of two statistic values; (0, 0) when identical (NaN equals
    NaN, 0 equals -0); None when they cannot be compared as numbers (NaN or an infinity against
    something else)."""
    if a == b or (math.isnan(a) and math.isnan(b)):
        return 0.0, 0.0
    if not (math.isfinite(a) and math.isfinite(b)):
        return None
    absolute = abs(a - b)
    return absolute, absolute / max(abs(a), abs(b))


def _new_entry():
    return {"max_abs": 0.0, "max_rel": 0.0, "worst_benchmark": None, "benchmarks": 0, "differing": 0}


def _record(entry, name, diff):
    """Add one compared statistic (diff: difference(), None for NaN against a number) to an entry."""
    entry["benchmarks"] += 1
    if diff is None:
        entry["differing"] += 1
        return
    absolute, relative = diff
    if absolute > 0.0:
        entry["differing"] += 1
    if entry["worst_benchmark"] is None or relative > entry["max_rel"] or (
            relative == entry["max_rel"] and absolute > entry["max_abs"]):
        entry["worst_benchmark"] = name
    entry["max_abs"] = max(entry["max_abs"], absolute)
    entry["max_rel"] = max(entry["max_rel"], relative)


class Spread:
    """The spread accumulated over pairs of {run_name: BenchmarkRun} maps."""

    def __init__(self):
        self.counters = {}    # counter -> entry (over all families; informational)
        self.by_family = {}   # family -> {counter: entry}
        self.mismatches = []  # {"benchmark", "counter", "native", "reference"}
        self.pairs = []       # {"native": summary, "reference": summary, "shared_benchmarks": n}

    def add(self, native_runs, reference_runs):
        """Add one pair; returns the number of shared benchmarks."""
        shared = [name for name in native_runs if name in reference_runs]
        for name in shared:
            native, reference = native_runs[name], reference_runs[name]
            family = self.by_family.setdefault(native.family, {})
            for counter, a in native.statistics.items():
                if counter not in reference.statistics:
                    continue
                b = reference.statistics[counter]
                diff = difference(a, b)
                if diff is None:
                    self.mismatches.append({"benchmark": name, "counter": counter,
                                            "native": None if math.isnan(a) else a,
                                            "reference": None if math.isnan(b) else b})
                _record(self.counters.setdefault(counter, _new_entry()), name, diff)
                _record(family.setdefault(counter, _new_entry()), name, diff)
        return len(shared)

    def document(self, safety_factor):
        by_family = {f: {c: entries[c] for c in sorted(entries)}
                     for f, entries in self.by_family.items() if entries}
        return {
            "format": FORMAT,
            "description": DESCRIPTION,
            "safety_factor": safety_factor,
            "pairs": self.pairs,
            "by_family": by_family,
            "tolerance": {f: {c: {"rel": safety_factor * e["max_rel"], "abs": safety_factor * e["max_abs"]}
                              for c, e in entries.items()}
                          for f, entries in by_family.items()},
            "counters": {c: self.counters[c] for c in sorted(self.counters)},
            "mismatches": self.mismatches,
        }


def measure(pairs, safety_factor=2.0):
    """The spread document of [(native run, reference run)] (run directories or benchmark.json
    files). Raises tstar_results.ResultsError for unreadable runs, SpreadError for runs that are not
    the same suite or share no statistic."""
    spread = Spread()
    for native, reference in pairs:
        native_context = tstar_results.load_context(native)
        reference_context = tstar_results.load_context(reference)
        check_same_settings(native, native_context, reference, reference_context)
        native_runs = tstar_results.load_benchmarks(native)
        reference_runs = tstar_results.load_benchmarks(reference)
        before = sum(e["benchmarks"] for e in spread.counters.values())
        shared = spread.add(native_runs, reference_runs)
        if sum(e["benchmarks"] for e in spread.counters.values()) == before:
            what = "benchmark" if not shared else "statistic counter in their shared benchmarks"
            raise SpreadError(f"{native} and {reference} have no {what} in common")
        spread.pairs.append({"native": machine_summary(native, native_context),
                             "reference": machine_summary(reference, reference_context),
                             "shared_benchmarks": shared})
    return spread.document(safety_factor)


# ---------------------------------------------------------------- Markdown

def _number(x):
    return f"{x:.3g}"


def _machine_text(summary):
    parts = [summary.get("cpu_model") or summary.get("host_name", "?")]
    for key in ("compute_profile", "openblas_core", "bf16_matmul_path", "libtorch_cpu_capability",
                "threads", "tstar_commit"):
        if key in summary:
            parts.append(f"{key.replace('_', ' ')} {summary[key]}")
    return f"{summary['run']} ({', '.join(str(p) for p in parts)})"


def markdown(document, *, most=None):
    """A Markdown summary of a spread document: the pairs, one table row per family and counter
    that moved (families in file order, largest relative spread first within a family; at most
    `most` rows per family), the counters that never moved, and any NaN mismatches."""
    lines = ["### CPU spread of the statistics per benchmark family (native vs reference)", ""]
    for index, pair in enumerate(document["pairs"], 1):
        lines.append(f"- pair {index}: native {_machine_text(pair['native'])} vs reference "
                     f"{_machine_text(pair['reference'])}, {pair['shared_benchmarks']} shared benchmarks")
    lines += ["", f"| Family | Counter | Max abs | Max rel | Worst benchmark | Differ in | "
                  f"Tolerance rel (×{document['safety_factor']:g}) | Tolerance abs |",
              "|---|---|---:|---:|---|---:|---:|---:|"]
    for family, entries in document["by_family"].items():
        moving = sorted((c for c in entries if entries[c]["differing"]),
                        key=lambda c: (-entries[c]["max_rel"], c))
        for counter in moving[:most]:
            entry, tolerance = entries[counter], document["tolerance"][family][counter]
            lines.append(f"| {family} | {counter} | {_number(entry['max_abs'])} | "
                         f"{entry['max_rel'] * 100:.3g}% | {entry['worst_benchmark']} | "
                         f"{entry['differing']} of {entry['benchmarks']} | {tolerance['rel'] * 100:.3g}% | "
                         f"{_number(tolerance['abs'])} |")
        if most is not None and len(moving) > most:
            lines.append(f"| {family} | (+{len(moving) - most} more) | | | | | | |")
    counters = document["counters"]
    identical = sorted(c for c in counters if not counters[c]["differing"])
    lines += ["", f"Identical in every shared benchmark ({len(identical)}): "
                  + (", ".join(identical) if identical else "none") + "."]
    if document["mismatches"]:
        lines += ["", f"**NaN against a number ({len(document['mismatches'])}), never tolerated:** "
                  + "; ".join(f"{m['benchmark']} {m['counter']} {m['native']} vs {m['reference']}"
                              for m in document["mismatches"][:5])
                  + (" ..." if len(document["mismatches"]) > 5 else "")]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- reading a spread file back

def _non_negative(path, where, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0.0 \
            or math.isinf(value):
        raise SpreadError(f"{path}: {where} is not a non-negative number: {value!r}")
    return float(value)


def _object(path, doc, key):
    value = doc.get(key)
    if not isinstance(value, dict):
        raise SpreadError(f"{path}: no '{key}' object (not a spread file made by ci/spread?)")
    return value


def _check_entries(path, where, entries, keys):
    """{counter: {key: non-negative number}} at `where` of the file."""
    if not isinstance(entries, dict):
        raise SpreadError(f"{path}: {where} is not an object")
    for counter, entry in entries.items():
        if not isinstance(entry, dict):
            raise SpreadError(f"{path}: {where}.{counter} is not an object")
        for key in keys:
            _non_negative(path, f"{where}.{counter}.{key}", entry.get(key))


def load(path):
    """A spread file as a dict, after checking its format and the shape of 'by_family',
    'tolerance' and 'counters'. Raises SpreadError (or tstar_results.ResultsError for a missing or
    non-JSON file) naming the file."""
    doc = tstar_results.load_json(path)
    if not isinstance(doc, dict):
        raise SpreadError(f"{path}: not a spread file made by ci/spread (not a JSON object)")
    found = doc.get("format")
    if found != FORMAT:
        made = ("has no 'format' key (format 1: one global tolerance per counter)" if found is None
                else f"is format {found!r}")
        raise SpreadError(f"{path}: spread file {made}; this tool reads format {FORMAT} (tolerances "
                          f"per benchmark family): remake it with ci/spread")
    _check_entries(path, "counters", _object(path, doc, "counters"), ("max_abs", "max_rel"))
    for key, names in (("by_family", ("max_abs", "max_rel")), ("tolerance", ("rel", "abs"))):
        for family, entries in _object(path, doc, key).items():
            _check_entries(path, f"{key}.{family}", entries, names)
    return doc


def load_tolerances(path):
    """{family: {counter: (rel, abs)}} from a spread file's 'tolerance' object (see load)."""
    return {family: {counter: (float(entry["rel"]), float(entry["abs"])) for counter, entry in entries.items()}
            for family, entries in load(path)["tolerance"].items()}


def measured_of(doc):
    """{family: {counter: (max_rel, max_abs)}}: the measured spread of a loaded spread file, without
    the safety factor."""
    return {family: {counter: (float(entry["max_rel"]), float(entry["max_abs"]))
                     for counter, entry in entries.items()}
            for family, entries in doc["by_family"].items()}


def load_measured(path):
    """{family: {counter: (max_rel, max_abs)}} of a spread file (see load and measured_of)."""
    return measured_of(load(path))


def family_of(benchmark):
    """The family of a benchmark name: the part before the first '/'."""
    return benchmark.split("/", 1)[0]


def lookup(per_family, benchmark, counter):
    """The entry of `counter` for `benchmark`'s family in {family: {counter: value}}, or None when
    the family or the counter has none (the statistic must then be bit-identical)."""
    return per_family.get(family_of(benchmark), {}).get(counter)


def within(a, b, tolerance):
    """Whether a != b is within tolerance (rel, abs): |a-b| <= abs or |a-b| <= rel*max(|a|,|b|).
    NaN or an infinity against anything else never is."""
    diff = difference(a, b)
    if diff is None:
        return False
    rel, absolute = tolerance
    return diff[0] <= absolute or diff[0] <= rel * max(abs(a), abs(b))


def spread_of(value, max_rel):
    """The CPU spread of a statistic with value `value` given its family's measured relative spread:
    max_rel * |value|; NaN for a non-finite value. (At value 0 this is 0: show the family's
    max_abs beside it, the relative spread says nothing there.)"""
    if not math.isfinite(value):
        return math.nan
    return max_rel * abs(value)
