"""The CPU spread (ci/spread, format 2) beside alpha and best T: how far they move between CPUs on
the native compute profile, from the spread measured in their benchmark family."""

import math
import os
from dataclasses import dataclass

import tstar_results as tr
import tstar_spread

from .common import ReportError, finite, fmt

# The committed native-vs-reference spread (ci/spread), relative to the repository root (above ci/).
REPOSITORY_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
DEFAULT_CPU_SPREAD = os.path.join(REPOSITORY_ROOT, "results", "baseline", "cpu-spread.json")
# A CPU spread at least this fraction of the seeds' 95% CI half-width marks a row.
MACHINE_VS_SEED = 0.5
MACHINE_MARK = "machine ≈ seed"


@dataclass
class CpuSpread:
    """The measured native-vs-reference spread of a ci/spread file."""
    path: str
    measured: dict   # family -> {counter: (max_rel, max_abs)}, without the safety factor
    pairs: list


def load_cpu_spread(option):
    """The CPU spread to show: --cpu-spread FILE, none for 'none', else the committed default when
    it exists."""
    if option is not None and option.strip().lower() == "none":
        return None
    path = option or DEFAULT_CPU_SPREAD
    if option is None and not os.path.isfile(path):
        return None
    try:
        doc = tstar_spread.load(path)
    except (tr.ResultsError, tstar_spread.SpreadError) as e:
        raise ReportError(str(e)) from None
    pairs = doc.get("pairs") if isinstance(doc.get("pairs"), list) else []
    return CpuSpread(path=path, measured=tstar_spread.measured_of(doc), pairs=pairs)


def cpu_spread_text(cpu_spread):
    if cpu_spread is None:
        return "not used"
    machines = []
    for pair in cpu_spread.pairs:
        if isinstance(pair, dict):
            names = [machine_name(pair.get(side)) for side in ("native", "reference")]
            machines.append(f"{names[0]} (native) vs {names[1]} (reference)")
    return f"{cpu_spread.path} (per benchmark family)" + (f": {'; '.join(machines)}" if machines else "")


def machine_name(summary):
    if not isinstance(summary, dict):
        return "?"
    return str(summary.get("cpu_model") or summary.get("openblas_core") or summary.get("host_name") or "?")


def cpu_spread_header(profile):
    return "CPU spread, native runs only (alpha / best T)" if profile == "reference" else "CPU spread (alpha / best T)"


def cpu_spread_cell(entry, cpu_spread, family):
    """('±a / ±b', marked): the CPU spread of the entry's alpha and best T, max_rel·|v| with
    max_rel the largest relative native-vs-reference difference measured in the benchmark family
    (n/a when the spread file has none for the family and counter; at v = 0, where a relative
    spread says nothing, the family's largest absolute difference is shown beside it), and whether
    either is at least MACHINE_VS_SEED of its seed CI95 half-width (a value without a positive CI is
    never marked: there is no seed spread to weigh)."""
    parts, marked = [], False
    for counter in ("alpha", "best_T"):
        measured = cpu_spread.measured.get(family, {}).get(counter)
        value = entry.get(counter)
        spread = tstar_spread.spread_of(value, measured[0]) if measured else math.nan
        ci = entry.get(f"{counter}_ci95")
        if finite(spread) and finite(ci) and ci > 0 and spread >= MACHINE_VS_SEED * ci:
            marked = True
        text = f"±{fmt(spread, 2)}" if finite(spread) else "n/a"
        if finite(spread) and value == 0:
            text += f" (family max abs {fmt(measured[1], 2)})"
        parts.append(text)
    return " / ".join(parts) + (f" ({MACHINE_MARK})" if marked else ""), marked


def cpu_spread_note(profile, cpu_spread):
    """The sentence below a table with rows marked MACHINE_MARK."""
    measured = (f"max_rel·|v|, max_rel the largest relative native-vs-reference difference ci/spread "
                f"measured in the benchmark family, in {cpu_spread.path}")
    if profile == "reference":
        return (f"Rows marked \"{MACHINE_MARK}\": results computed on the native compute profile move by this "
                f"much between CPUs ({measured}), at least half the seed 95% CI half-width. This run used the "
                f"reference profile: its numbers are bit-identical on any x86-64-v3 CPU.")
    return (f"Rows marked \"{MACHINE_MARK}\": results computed on the native compute profile move by this "
            f"much between CPUs ({measured}), at least half the seed 95% CI half-width; rerun with "
            f"`--compute reference` for bit-identical numbers.")
