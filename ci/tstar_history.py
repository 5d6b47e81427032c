"""History records: one small JSON file per recorded bench run (results/history/<date>-<commit>.json).

A record condenses a run's benchmark.json to what trends over commits need: every repetition's
times, the statistics, the rates and the errors of each benchmark, plus commit, date, host and the
run's configuration: (settings digest, model digest, CPU model, device), from the run's provenance.
Only records of one configuration form a series that can be compared (a smoke run against a main
run, or an AVX-512 machine against an AVX2 one, would show differences that are no regression).
runs_from_record() turns a record back into {name: BenchmarkRun}, so the reproducibility gate of
tstar_compare works on history exactly as on run directories. Standard library only.
"""

import datetime
import hashlib
import json
import math
import os
import subprocess

import tstar_results
from tstar_results import BenchmarkRun, ResultsError

SCHEMA = 2               # 2: records carry "configuration"
READABLE_SCHEMAS = (1, 2)
DEFAULT_HISTORY_DIR = os.path.join("results", "history")
UNKNOWN = "unknown"
# benchmark.json context keys that are the run's settings (what it measured and how); the machine's
# own keys (CPU, BLAS, library versions, commit) are not: the CPU is a key of its own.
SETTINGS_CONTEXT_KEYS = ("tstar_compute_profile", "tstar_scales", "tstar_detail_scales", "tstar_seeds",
                         "tstar_noise", "tstar_reference", "tstar_threads", "tstar_prompts_sha256")
# results.json "settings" keys that name paths or the device, not what was measured (used only for
# runs whose benchmark.json context has none of SETTINGS_CONTEXT_KEYS).
RESULTS_SETTINGS_NOT_SETTINGS = ("model", "tokenizer", "device")
# What identifies the model: its digests, and its tokenizer's.
MODEL_DIGEST_KEYS = ("config_sha256", "weight_files_sha256", "dtype")


def _json_number(value):
    # JSON has no NaN/inf; a record must stay readable by any JSON parser (browsers included).
    return value if math.isfinite(value) else None


def _from_json_number(value):
    return math.nan if value is None else float(value)


def utc_timestamp(text):
    """ISO 8601 date (as Google Benchmark writes it) -> aware UTC datetime; None when unparsable."""
    try:
        moment = datetime.datetime.fromisoformat(str(text))
    except ValueError:
        return None
    if moment.tzinfo is None:  # bench writes an offset; a bare time is taken as UTC
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc)


def git_commit(source_dir):
    """Full commit of the checkout at source_dir, or None outside git."""
    try:
        done = subprocess.run(["git", "-C", source_dir, "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def condense_run(run):
    return {
        "real_time_ns": [_json_number(v) for v in run.real_time_ns],
        "cpu_time_ns": [_json_number(v) for v in run.cpu_time_ns],
        "statistics": {k: _json_number(v) for k, v in run.statistics.items()},
        "rates": {k: [_json_number(v) for v in values] for k, values in run.rates.items()},
        "errors": list(run.errors),
        # Statistics that differed between repetitions: the gate reports them as not reproducible.
        "inconsistent": sorted(run.inconsistent),
    }


def _digest(value):
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode("utf-8")).hexdigest()[:12]


def _object(value):
    """A JSON object given as an object or as JSON text (bench writes tstar_model as text); {} else."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def configuration_key(settings_digest, model_digest, cpu_model, device):
    return f"settings {settings_digest} · model {model_digest} · CPU {cpu_model} · {device}"


def configuration(context, experiments=None):
    """{"key", "settings_digest", "model_digest", "cpu_model", "device"} of a run, from its
    benchmark.json context (tstar_* keys), else from results.json ("settings", "provenance") when
    given; a part neither says is "unknown"."""
    experiments = experiments if isinstance(experiments, dict) else {}
    provenance, settings_doc = _object(experiments.get("provenance")), _object(experiments.get("settings"))
    settings = {k: context[k] for k in SETTINGS_CONTEXT_KEYS if k in context}
    if not settings:
        settings = {k: v for k, v in settings_doc.items() if k not in RESULTS_SETTINGS_NOT_SETTINGS}
    model = _object(context.get("tstar_model")) or _object(provenance.get("model"))
    identity = {k: model[k] for k in MODEL_DIGEST_KEYS if k in model}
    tokenizer = context.get("tstar_tokenizer_sha256", provenance.get("tokenizer_sha256"))
    if tokenizer:
        identity["tokenizer_sha256"] = tokenizer
    if "config_sha256" in identity or "weight_files_sha256" in identity:
        model_digest = _digest(identity)
    else:   # a run that recorded no digests: the model's name is what it says
        model_digest = os.path.basename(str(model.get("model", "")).rstrip("/")) or UNKNOWN
    parts = {"settings_digest": _digest(settings) if settings else UNKNOWN, "model_digest": model_digest,
             "cpu_model": str(context.get("tstar_cpu_model") or provenance.get("cpu_model") or UNKNOWN),
             "device": str(model.get("device") or settings_doc.get("device") or UNKNOWN)}
    return {"key": configuration_key(**parts), **parts}


def record_configuration(record):
    """The record's configuration; a record without one (schema 1) gets one derived from what it
    holds: its host and the set of its benchmark names (runs of other settings run other
    benchmarks), the rest unknown."""
    stored = record.get("configuration")
    if isinstance(stored, dict) and isinstance(stored.get("key"), str):
        return stored
    parts = {"settings_digest": f"legacy record: benchmarks {_digest(sorted(record.get('benchmarks', {})))}",
             "model_digest": UNKNOWN, "cpu_model": f"{UNKNOWN} (host {record.get('host', UNKNOWN)})",
             "device": UNKNOWN}
    return {"key": configuration_key(**parts), **parts}


def make_record(run_dir, commit=None, label=None, now=None):
    """The record of one run directory (or benchmark.json path). commit defaults to the run's own
    tstar_tstar_commit, then to the checkout's HEAD; date to the run's context date, then now."""
    runs = tstar_results.load_benchmarks(run_dir)
    context = tstar_results.load_context(run_dir)
    run_path = os.path.abspath(run_dir)
    if not os.path.isdir(run_path):  # a benchmark.json path: the run is its folder
        run_path = os.path.dirname(run_path)
    results = os.path.join(run_path, "results.json")  # settings and provenance, when the run has it
    experiments = tstar_results.load_experiments(results) if os.path.isfile(results) else None
    tools_checkout = os.path.dirname(os.path.abspath(__file__))
    commit = commit or context.get("tstar_tstar_commit") or git_commit(tools_checkout) or "unknown"
    moment = utc_timestamp(context.get("date", "")) or now or datetime.datetime.now(datetime.timezone.utc)
    return {
        "schema": SCHEMA,
        "commit": str(commit),
        "date": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host": str(context.get("host_name", "unknown")),
        "run": os.path.basename(run_path),
        "label": label,
        "configuration": configuration(context, experiments),
        "benchmarks": {name: condense_run(run) for name, run in runs.items()},
    }


def record_file_name(record):
    """<UTC date and time>-<short commit>.json: sorts by date, and two runs of a day stay apart."""
    moment = utc_timestamp(record["date"])
    stamp = moment.strftime("%Y%m%dT%H%M%SZ") if moment else "undated"
    short = "".join(c for c in record["commit"][:12] if c.isalnum()) or "unknown"
    return f"{stamp}-{short}.json"


def write_text_atomically(path, text):
    """Writes through a temporary file beside `path` and a rename, so a reader never sees half a file
    (the temporary file is named <path>.<pid>.tmp, which .gitignore leaves out of results/history)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_record(record, history_dir):
    """Writes the record atomically; returns its path."""
    path = os.path.join(history_dir, record_file_name(record))
    # allow_nan=False: condense_run already turned NaN into null, this keeps it that way.
    write_text_atomically(path, json.dumps(record, indent=1, allow_nan=False) + "\n")
    return path


def _check_record(record, path):
    if not isinstance(record, dict) or record.get("schema") not in READABLE_SCHEMAS:
        raise ResultsError(f"{path}: not a tstar history record (schema "
                           f"{' or '.join(map(str, READABLE_SCHEMAS))})")
    if not isinstance(record.get("benchmarks"), dict):
        raise ResultsError(f"{path}: history record has no 'benchmarks' object")
    for key in ("commit", "date"):
        if not isinstance(record.get(key), str):
            raise ResultsError(f"{path}: history record has no '{key}' string")


def _numbers(values, path, where):
    if not isinstance(values, list) or not all(v is None or isinstance(v, (int, float)) for v in values):
        raise ResultsError(f"{path}: {where} is not a list of numbers")
    return [_from_json_number(v) for v in values]


def runs_from_record(record, path="record"):
    """{name: BenchmarkRun} from a record, as tstar_results.load_benchmarks gives for a run."""
    runs = {}
    for name, entry in record["benchmarks"].items():
        if not isinstance(entry, dict):
            raise ResultsError(f"{path}: benchmark '{name}' is not an object")
        run = BenchmarkRun(name)
        run.real_time_ns = _numbers(entry.get("real_time_ns", []), path, f"{name}: real_time_ns")
        run.cpu_time_ns = _numbers(entry.get("cpu_time_ns", []), path, f"{name}: cpu_time_ns")
        statistics = entry.get("statistics", {})
        rates = entry.get("rates", {})
        if not isinstance(statistics, dict) or not isinstance(rates, dict):
            raise ResultsError(f"{path}: {name}: statistics and rates must be objects")
        names = list(statistics)
        run.statistics = dict(zip(names, _numbers([statistics[k] for k in names], path, f"{name}: statistics")))
        run.rates = {k: _numbers(v, path, f"{name}: rates.{k}") for k, v in rates.items()}
        run.errors = [str(e) for e in entry.get("errors", [])]
        run.inconsistent = {str(k) for k in entry.get("inconsistent", [])}
        runs[name] = run
    return runs


def load_record(path):
    record = tstar_results.load_json(path)
    _check_record(record, path)
    runs_from_record(record, path)  # validates the benchmarks' shape here, with the file's name
    return record


def load_history(history_dir):
    """All records of a history folder, oldest first (by date, then commit for a stable order)."""
    try:
        names = sorted(n for n in os.listdir(history_dir) if n.endswith(".json"))
    except FileNotFoundError:
        raise ResultsError(f"{history_dir}: no such history folder (record runs with ci/record)") from None
    except OSError as e:
        raise ResultsError(f"{history_dir}: cannot list: {e}") from None
    records = [load_record(os.path.join(history_dir, n)) for n in names]
    if not records:
        raise ResultsError(f"{history_dir}: no history records (*.json); record runs with ci/record")
    return sorted(records, key=lambda r: (utc_timestamp(r["date"]) or datetime.datetime.min.replace(
        tzinfo=datetime.timezone.utc), r["commit"]))
