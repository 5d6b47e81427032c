"""Comparing two `bench` runs: the regression gate behind ci/compare (also used by ci/dashboard).

Two different questions are asked of every benchmark present in the base run:

  time        Is the new run really slower? Real time is noisy, so a regression needs both a
              significant Mann-Whitney U test over the repetitions (p < alpha, as Google Benchmark's
              tools/compare.py does it) and a median slowdown above the threshold.
  statistics  Did any deterministic counter (alpha, best_T, KL, ...) change? These are functions of
              seed and inputs only, so by default they must be bit-identical: this is the
              reproducibility gate. A relative tolerance can be given for cross-platform comparisons,
              or per-family tolerances from a CPU spread file (ci/spread, tstar_spread.py) for runs
              of the native compute profile on different CPUs: a statistic within the tolerance of
              its counter in its benchmark's family is reported, not failed; a family or counter
              the file has no entry for must stay bit-identical.

Standard library only (the Mann-Whitney test is written out here instead of importing scipy).
"""

import dataclasses
import math

import tstar_results
import tstar_spread

# The gate's default settings, for ci/compare's options and ci/dashboard's comparisons alike:
# a slowdown of the median real time above DEFAULT_FAIL_THRESHOLD (relative) with a Mann-Whitney
# p-value below DEFAULT_ALPHA fails; statistics must be bit-identical (DEFAULT_STAT_TOLERANCE).
DEFAULT_FAIL_THRESHOLD = 0.10
DEFAULT_ALPHA = 0.05
DEFAULT_STAT_TOLERANCE = 0.0

# Statuses, most serious first: a benchmark's status is the most serious of what went wrong.
FAILURE_ORDER = ("missing", "error", "not-reproducible", "changed", "slower")


# ---------------------------------------------------------------- Mann-Whitney U test

def _average_ranks(values):
    """Ranks 1..n of `values` with ties given their average rank, and the sizes of the tie groups."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    tie_sizes = []
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        average = 0.5 * (start + end) + 1.0
        for position in range(start, end + 1):
            ranks[order[position]] = average
        tie_sizes.append(end - start + 1)
        start = end + 1
    return ranks, tie_sizes


def _u_frequencies(n1, n2):
    """How many of the C(n1+n2, n1) orderings give U = 0..n1*n2 (no ties): the coefficients of
    the Gaussian binomial [n1+n2 choose n1]_q, built as prod_i (1 - q^(n2+i)) / (1 - q^i) with
    exact integers. Truncating at degree n1*n2 is safe because the result has that degree."""
    top = n1 * n2
    counts = [1] + [0] * top
    for i in range(1, n1 + 1):
        for k in range(top, n2 + i - 1, -1):   # times (1 - q^(n2+i))
            counts[k] -= counts[k - n2 - i]
        for k in range(i, top + 1):            # divided by (1 - q^i) = times (1 + q^i + q^2i ...)
            counts[k] += counts[k - i]
    return counts


def _exact_two_sided_p(u_max, n1, n2):
    counts = _u_frequencies(n1, n2)
    at_least = sum(counts[int(u_max):])        # P(U >= u_max), including the mass at u_max
    return min(1.0, 2.0 * at_least / math.comb(n1 + n2, n1))


def _asymptotic_two_sided_p(u_max, n1, n2, tie_sizes):
    n = n1 + n2
    tie_term = sum(t ** 3 - t for t in tie_sizes)
    variance = n1 * n2 / 12.0 * ((n + 1) - tie_term / (n * (n - 1)))
    if variance <= 0.0:                       # every value equal: no evidence of any difference
        return 1.0
    z = (u_max - n1 * n2 / 2.0 - 0.5) / math.sqrt(variance)   # 0.5: continuity correction
    return min(1.0, max(0.0, math.erfc(z / math.sqrt(2.0))))  # 2 * normal survival function


def mann_whitney_u(x, y):
    """Two-sided Mann-Whitney U test of samples x and y: (U of x, p-value).

    Follows scipy.stats.mannwhitneyu(x, y, alternative='two-sided') with its default
    method='auto', which is what Google Benchmark's tools/compare.py calls: the exact null
    distribution when one sample has at most 8 values and there are no ties, otherwise the normal
    approximation with tie and continuity corrections."""
    x, y = [float(v) for v in x], [float(v) for v in y]
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        raise ValueError("mann_whitney_u needs at least one value in each sample")
    ranks, tie_sizes = _average_ranks(x + y)
    u1 = sum(ranks[:n1]) - n1 * (n1 + 1) / 2.0
    u_max = max(u1, n1 * n2 - u1)
    has_ties = any(size > 1 for size in tie_sizes)
    if min(n1, n2) <= 8 and not has_ties:
        return u1, _exact_two_sided_p(u_max, n1, n2)
    return u1, _asymptotic_two_sided_p(u_max, n1, n2, tie_sizes)


def smallest_p_value(n1, n2):
    """The smallest p-value any samples of these sizes can give (completely separated samples):
    with 3 vs 3 repetitions it is 0.1, so such runs can never show a significant change."""
    return mann_whitney_u(range(n1), range(n1, n1 + n2))[1]


# ---------------------------------------------------------------- comparing runs

@dataclasses.dataclass
class Row:
    """The verdict on one benchmark. Times are medians over repetitions, in nanoseconds."""
    name: str
    status: str = "ok"          # ok, slower, faster, changed, not-reproducible, error, missing, new
    failed: bool = False
    base_time_ns: float = math.nan
    new_time_ns: float = math.nan
    time_change: float = None   # new/base - 1; None when either side has no time
    p_value: float = None       # None when there are too few repetitions to test
    stat_changes: list = dataclasses.field(default_factory=list)  # (counter, base, new); None = absent
    # (counter, base, new, difference, allowed, relative): differs within its cross-machine tolerance;
    # difference and allowed are relative (|a-b|/max(|a|,|b|), rel) or absolute (|a-b|, abs).
    tolerated: list = dataclasses.field(default_factory=list)
    note: str = ""
    base_repetitions: int = 0
    new_repetitions: int = 0


def _same_value(a, b, tolerance):
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if a == b:
        return True
    return abs(a - b) <= tolerance * max(abs(a), abs(b))


def _tolerance_used(a, b, tolerance):
    """(difference, allowed, relative) of a != b by the more lenient of its counter's tolerances,
    or None when it is outside both (see tstar_spread.within)."""
    if not tstar_spread.within(a, b, tolerance):
        return None
    rel, absolute = tolerance
    difference = abs(a - b)
    largest = max(abs(a), abs(b))
    if rel * largest >= absolute:
        return difference / largest, rel, True
    return difference, absolute, False


def _statistic_changes(base, new, tolerance, cross_machine=None):
    """([(counter, base, new)] changed, [(counter, base, new, difference, allowed, relative)]
    within their cross-machine tolerance). cross_machine: {counter: (rel, abs)} of the benchmark's
    family."""
    changes, tolerated = [], []
    for counter in list(base.statistics) + [c for c in new.statistics if c not in base.statistics]:
        a, b = base.statistics.get(counter), new.statistics.get(counter)
        if a is not None and b is not None and _same_value(a, b, tolerance):
            continue
        used = None
        if a is not None and b is not None and cross_machine and counter in cross_machine:
            used = _tolerance_used(a, b, cross_machine[counter])
        if used is None:
            changes.append((counter, a, b))
        else:
            tolerated.append((counter, a, b) + used)
    return changes, tolerated


def _percent(fraction):
    """0.04 -> '4.0', 1.47 -> '147', 1.2e-5 -> '0.0012': two significant digits, no exponent."""
    value = fraction * 100
    return f"{value:.0f}" if value >= 10 else f"{value:#.2g}".rstrip(".")


def _format_share(difference, allowed, relative):
    if relative:
        return f"{_percent(difference)}% of {_percent(allowed)}% allowed"
    return f"{difference:.2g} of {allowed:.2g} allowed (absolute)"


def tolerated_note(tolerated, family):
    """'3 statistics within the WeightNoise family's cross-machine tolerance (largest: alpha 4.0% of
    8.0% allowed)'; the largest is the one using the largest share of its allowance."""
    if not tolerated:
        return ""
    counter, _, _, difference, allowed, relative = max(
        tolerated, key=lambda t: t[3] / t[4] if t[4] > 0 else math.inf)
    count = len(tolerated)
    return (f"{count} statistic{'s' if count != 1 else ''} within the {family} family's cross-machine "
            f"tolerance (largest: {counter} {_format_share(difference, allowed, relative)})")


def _time_verdict(base, new, fail_threshold, alpha):
    """(time status, time change, p-value, note) for the real times of two runs."""
    base_time, new_time = base.median_time_ns(), new.median_time_ns()
    if not base.real_time_ns or not new.real_time_ns or not base_time > 0:
        return "ok", None, None, "no time to compare"
    change = new_time / base_time - 1.0
    n1, n2 = len(base.real_time_ns), len(new.real_time_ns)
    if n1 < 2 or n2 < 2:
        return "ok", change, None, f"{n1} vs {n2} repetitions: too few to test the time"
    p_value = mann_whitney_u(base.real_time_ns, new.real_time_ns)[1]
    note = ""
    if smallest_p_value(n1, n2) >= alpha:
        note = f"{n1} vs {n2} repetitions cannot reach p < {alpha:g}: time untested"
    if p_value < alpha and change > fail_threshold:
        return "slower", change, p_value, note
    if p_value < alpha and change < -fail_threshold:
        return "faster", change, p_value, note
    return "ok", change, p_value, note


def _compare_one(name, base, new, options):
    row = Row(name, base_time_ns=base.median_time_ns(), new_time_ns=new.median_time_ns(),
              base_repetitions=len(base.real_time_ns), new_repetitions=len(new.real_time_ns))
    problems, notes = [], []
    if new.errors:
        problems.append("error")
        notes.append("new run failed: " + new.errors[0])
    if base.errors:
        notes.append("base run failed: " + base.errors[0])
    unstable = sorted(base.inconsistent | new.inconsistent)
    if unstable:
        problems.append("not-reproducible")
        notes.append("differs between repetitions: " + ", ".join(unstable))
    family = tstar_spread.family_of(name)
    cross_machine = options["cross_machine"]
    family_tolerances = cross_machine.get(family, {}) if cross_machine is not None else {}
    row.stat_changes, row.tolerated = _statistic_changes(base, new, options["stat_tolerance"],
                                                         family_tolerances)
    if row.stat_changes:
        problems.append("changed")
        if cross_machine is not None and family not in cross_machine:
            notes.append(f"the spread file has no cross-machine tolerance for family {family}: "
                         f"its statistics must be bit-identical")
    notes.append(tolerated_note(row.tolerated, family))
    time_status, row.time_change, row.p_value, time_note = _time_verdict(
        base, new, options["fail_threshold"], options["alpha"])
    notes.append(time_note)
    if time_status == "slower":
        if options["gate_time"]:
            problems.append("slower")
        else:
            notes.append("time not gated")
    row.failed = bool(problems)
    row.status = min(problems, key=FAILURE_ORDER.index) if problems else time_status
    row.note = "; ".join(n for n in notes if n)
    return row


def compare_runs(base, new, *, fail_threshold=DEFAULT_FAIL_THRESHOLD, alpha=DEFAULT_ALPHA,
                 stat_tolerance=DEFAULT_STAT_TOLERANCE, gate_time=True, cross_machine=None):
    """Rows comparing {run_name: BenchmarkRun} maps (from tstar_results.load_benchmarks), in base
    order followed by benchmarks only the new run has. See the module doc for the rules.
    cross_machine: {family: {counter: (rel, abs)}} (tstar_spread.load_tolerances): a statistic of
    a benchmark in family F (its name before the first '/') that is not identical (or within
    stat_tolerance) passes when |a-b| <= abs or |a-b| <= rel*max(|a|,|b|) with the tolerance of its
    counter in F; without an entry for F, or for the counter in F, it must be identical."""
    options = dict(fail_threshold=fail_threshold, alpha=alpha, stat_tolerance=stat_tolerance,
                   gate_time=gate_time, cross_machine=cross_machine)
    rows = []
    for name, base_run in base.items():
        if name in new:
            rows.append(_compare_one(name, base_run, new[name], options))
        else:
            rows.append(Row(name, status="missing", failed=True,
                            base_time_ns=base_run.median_time_ns(),
                            note="in the base run but not in the new one"))
    for name, new_run in new.items():
        if name not in base:
            rows.append(Row(name, status="new", new_time_ns=new_run.median_time_ns(),
                            note="only in the new run"))
    return rows


# ---------------------------------------------------------------- Markdown

def format_time_ns(ns):
    """A time in nanoseconds in the largest unit that keeps it >= 1: '8.96 ms'."""
    if ns is None or math.isnan(ns):
        return "-"
    for unit, size in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if abs(ns) >= size:
            return f"{ns / size:.3g} {unit}"
    return f"{ns:.3g} ns"


def _format_change(change):
    return "-" if change is None else f"{change * 100:+.1f}%"


def _format_p(p_value):
    return "-" if p_value is None else f"{p_value:.3g}"


def _format_value(value):
    return "absent" if value is None else repr(value)   # repr: a 1-ulp change stays visible


def _format_stat_changes(changes, most):
    shown = [f"{c}: {_format_value(a)} → {_format_value(b)}" for c, a, b in changes[:most]]
    if len(changes) > most:
        shown.append(f"(+{len(changes) - most} more)")
    return "<br>".join(shown)


def _cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(rows, *, title=None, max_stat_changes=3):
    """A summary line and a Markdown table of `rows`, failures first (otherwise in row order)."""
    failed = [r for r in rows if r.failed]
    compared = sum(1 for r in rows if r.status != "new")
    lines = [f"### {title}", ""] if title else []
    verdict = "FAILED" if failed else "passed"
    tolerated = sum(1 for r in rows if r.tolerated)
    lines.append(f"**{verdict}**: {compared} benchmarks compared, {len(failed)} failed"
                 + (f" ({', '.join(sorted({r.status for r in failed}))})" if failed else "")
                 + (f"; {tolerated} with statistics within their family's cross-machine tolerance"
                    if tolerated else "")
                 + ".")
    lines += ["", "| Benchmark | Base time | New time | Change | p-value | Status | Changed statistics | Note |",
              "|---|---:|---:|---:|---:|---|---|---|"]
    for row in sorted(rows, key=lambda r: not r.failed):
        status = f"**{row.status}**" if row.failed else row.status
        cells = [row.name, format_time_ns(row.base_time_ns), format_time_ns(row.new_time_ns),
                 _format_change(row.time_change), _format_p(row.p_value), status,
                 _format_stat_changes(row.stat_changes, max_stat_changes), row.note]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"

