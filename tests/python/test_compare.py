"""ci/compare and ci/tstar_compare.py: the regression gate on crafted Google Benchmark JSON pairs."""

import glob
import json
import math
import os
import subprocess
import tempfile
import unittest

from crafted_runs import Bench, run_tool, write_run
import tstar_compare
import tstar_results

# Nine repetitions around 10 ms: enough for a Mann-Whitney test to see a real shift.
STEADY = [10.0, 10.1, 9.9, 10.05, 9.95, 10.2, 9.8, 10.15, 9.85]
STATISTICS = {"alpha": 0.1, "best_T": 1.0123456789, "kl_T1": 2.5e-3, "top1_match": 0.75}

# (x, y, U of x, two-sided p) from scipy.stats.mannwhitneyu(x, y, alternative='two-sided'),
# scipy 1.17.1: exact distribution (3 vs 3, 5 vs 5, 1 vs 3) and normal approximation with ties
# (7 vs 8) and without (9 vs 9, 10 vs 11).
SCIPY_REFERENCES = [
    ([1.0, 2.0, 3.0], [4.0, 5.0, 6.0], 0.0, 0.1),
    ([10.1, 10.3, 9.9, 10.0, 10.2, 10.4, 9.8, 10.05, 10.15],
     [11.2, 11.0, 11.5, 11.1, 11.3, 10.9, 11.4, 11.25, 11.05], 0.0, 0.00041229480206169127),
    ([5.0, 5.1, 4.9, 5.3, 4.8], [5.05, 5.2, 4.95, 5.15, 4.85], 11.0, 0.8412698412698413),
    ([1, 2, 2, 3, 3, 3, 4], [2, 3, 3, 4, 4, 5, 5, 6], 11.0, 0.04988443697992588),
    ([0.5, 0.7, 0.2, 0.9, 1.1, 0.3, 0.8, 0.4, 0.6, 1.0],
     [0.65, 0.75, 0.25, 1.2, 1.3, 0.35, 0.85, 0.45, 1.5, 1.4, 0.95], 38.0, 0.2452781168067728),
    ([7.0], [1.0, 2.0, 3.0], 3.0, 0.5),
]


def scaled(times, factor):
    return [t * factor for t in times]


class MannWhitneyTest(unittest.TestCase):
    def test_matches_scipy(self):
        for x, y, u, p in SCIPY_REFERENCES:
            with self.subTest(x=x, y=y):
                got_u, got_p = tstar_compare.mann_whitney_u(x, y)
                self.assertEqual(got_u, u)
                self.assertAlmostEqual(got_p, p, delta=1e-12 + 1e-9 * p)

    def test_symmetric_in_p_and_complementary_in_u(self):
        x, y = SCIPY_REFERENCES[4][:2]
        u_xy, p_xy = tstar_compare.mann_whitney_u(x, y)
        u_yx, p_yx = tstar_compare.mann_whitney_u(y, x)
        self.assertAlmostEqual(p_xy, p_yx, delta=1e-15)
        self.assertEqual(u_xy + u_yx, len(x) * len(y))

    def test_all_equal_values_give_p_one(self):
        self.assertEqual(tstar_compare.mann_whitney_u([2.0] * 9, [2.0] * 9)[1], 1.0)

    def test_smallest_p_value(self):
        self.assertAlmostEqual(tstar_compare.smallest_p_value(3, 3), 0.1)
        self.assertLess(tstar_compare.smallest_p_value(9, 9), 0.001)


class CompareRunsTest(unittest.TestCase):
    """compare_runs on BenchmarkRun maps read back from crafted files."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def load(self, label, benchmarks):
        return tstar_results.load_benchmarks(write_run(os.path.join(self.tmp.name, label), benchmarks))

    def compare(self, base, new, **options):
        rows = tstar_compare.compare_runs(self.load("base", base), self.load("new", new), **options)
        return {row.name: row for row in rows}

    def test_identical_runs_pass(self):
        runs = {"A": Bench(STEADY, STATISTICS), "B": Bench(STEADY, {"alpha": math.nan})}
        rows = self.compare(runs, runs)
        self.assertEqual({r.status for r in rows.values()}, {"ok"})
        self.assertFalse(any(r.failed for r in rows.values()))
        self.assertAlmostEqual(rows["A"].base_time_ns, 10.0e6)
        self.assertEqual(rows["A"].time_change, 0.0)

    def test_clearly_slower_fails_with_median_and_p(self):
        rows = self.compare({"A": Bench(STEADY)}, {"A": Bench(scaled(STEADY, 1.3))})
        row = rows["A"]
        self.assertTrue(row.failed)
        self.assertEqual(row.status, "slower")
        self.assertAlmostEqual(row.time_change, 0.3)
        self.assertLess(row.p_value, 0.05)

    def test_clearly_faster_is_reported_not_failed(self):
        row = self.compare({"A": Bench(STEADY)}, {"A": Bench(scaled(STEADY, 0.7))})["A"]
        self.assertEqual((row.status, row.failed), ("faster", False))

    def test_three_repetitions_cannot_fail_on_time(self):
        row = self.compare({"A": Bench(STEADY[:3])}, {"A": Bench(scaled(STEADY[:3], 2.0))})["A"]
        self.assertFalse(row.failed)
        self.assertIn("3 vs 3", row.note)

    def test_statistic_missing_on_one_side_fails(self):
        base = {"A": Bench(STEADY, STATISTICS)}
        new = {"A": Bench(STEADY, {k: v for k, v in STATISTICS.items() if k != "kl_T1"})}
        row = self.compare(base, new)["A"]
        self.assertEqual((row.status, row.failed), ("changed", True))
        self.assertEqual(row.stat_changes, [("kl_T1", 2.5e-3, None)])

    def test_relative_tolerance(self):
        base = {"A": Bench(STEADY, {"alpha": 1.0})}
        new = {"A": Bench(STEADY, {"alpha": 1.0 + 1e-9})}
        self.assertTrue(self.compare(base, new, stat_tolerance=1e-10)["A"].failed)
        self.assertFalse(self.compare(base, new, stat_tolerance=1e-8)["A"].failed)

    def test_nan_against_number_fails(self):
        row = self.compare({"A": Bench(STEADY, {"alpha": math.nan})},
                           {"A": Bench(STEADY, {"alpha": 0.0})}, stat_tolerance=1.0)["A"]
        self.assertTrue(row.failed)

    def test_error_in_new_fails(self):
        row = self.compare({"A": Bench(STEADY)}, {"A": Bench(STEADY, error="model not found")})["A"]
        self.assertEqual((row.status, row.failed), ("error", True))
        self.assertIn("model not found", row.note)

    def test_statistic_differing_between_repetitions_is_not_reproducible(self):
        flaky = Bench(STEADY[:3], per_repetition={"alpha": [0.1, 0.1, 0.1000001]})
        row = self.compare({"A": Bench(STEADY[:3], {"alpha": 0.1})}, {"A": flaky})["A"]
        self.assertEqual((row.status, row.failed), ("not-reproducible", True))
        self.assertIn("alpha", row.note)

    def test_time_gate_off_reports_but_passes(self):
        row = self.compare({"A": Bench(STEADY)}, {"A": Bench(scaled(STEADY, 1.5))}, gate_time=False)["A"]
        self.assertEqual((row.status, row.failed), ("slower", False))

    def test_markdown_shows_one_ulp_change(self):
        after = math.nextafter(0.1, 1.0)
        rows = tstar_compare.compare_runs(self.load("b", {"A": Bench(STEADY, {"alpha": 0.1})}),
                                          self.load("n", {"A": Bench(STEADY, {"alpha": after})}))
        table = tstar_compare.markdown_table(rows)
        self.assertIn("1 failed", table)
        self.assertIn(repr(0.1), table)
        self.assertIn(repr(after), table)


class CompareCommandTest(unittest.TestCase):
    """ci/compare BASE NEW: exit status and the printed table."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def pair(self, base, new):
        return (write_run(os.path.join(self.tmp.name, "base"), base),
                write_run(os.path.join(self.tmp.name, "new"), new))

    def test_identical_runs_exit_0(self):
        runs = {"WeightNoise/scale:0.01": Bench(STEADY, STATISTICS), "Other": Bench(STEADY)}
        base, new = self.pair(runs, runs)
        result = run_tool("compare", base, new)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("2 benchmarks compared, 0 failed", result.stdout)
        self.assertIn("WeightNoise/scale:0.01", result.stdout)

    def test_json_files_as_well_as_directories(self):
        base, new = self.pair({"A": Bench(STEADY)}, {"A": Bench(STEADY)})
        result = run_tool("compare", os.path.join(base, "benchmark.json"), new)
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_slower_with_nine_repetitions_exits_1(self):
        base, new = self.pair({"Fast": Bench(STEADY), "Slow": Bench(STEADY)},
                              {"Fast": Bench(STEADY), "Slow": Bench(scaled(STEADY, 1.25))})
        result = run_tool("compare", base, new)
        self.assertEqual(result.returncode, 1)
        slow_line = next(line for line in result.stdout.splitlines() if line.startswith("| Slow"))
        self.assertIn("slower", slow_line)
        self.assertIn("+25.0%", slow_line)
        self.assertIn("10 ms", slow_line)
        self.assertIn("12.5 ms", slow_line)

    def test_significant_slowdown_inside_threshold_passes(self):
        base, new = self.pair({"A": Bench(STEADY)}, {"A": Bench(scaled(STEADY, 1.06))})
        self.assertEqual(run_tool("compare", base, new).returncode, 0)
        # ... and fails once the threshold is below the slowdown (percent syntax accepted).
        self.assertEqual(run_tool("compare", base, new, "--fail-threshold", "5%").returncode, 1)

    def test_noisy_change_that_is_not_significant_passes(self):
        noisy_base = [10.0, 14.0, 9.0, 16.0, 11.0, 15.0, 9.5, 14.5, 10.5]
        noisy_new = [10.2, 14.6, 9.2, 16.5, 11.6, 15.2, 9.7, 14.9, 12.4]
        # The premise: a median change above the threshold that the test finds not significant.
        change = sorted(noisy_new)[4] / sorted(noisy_base)[4] - 1.0
        self.assertGreater(change, 0.10)
        self.assertGreater(tstar_compare.mann_whitney_u(noisy_base, noisy_new)[1], 0.05)
        base, new = self.pair({"A": Bench(noisy_base)}, {"A": Bench(noisy_new)})
        result = run_tool("compare", base, new)
        self.assertEqual(result.returncode, 0, result.stdout)

    def test_one_ulp_statistic_change_fails_unless_tolerated(self):
        changed = dict(STATISTICS, best_T=math.nextafter(STATISTICS["best_T"], 2.0))
        base, new = self.pair({"A": Bench(STEADY, STATISTICS)}, {"A": Bench(STEADY, changed)})
        result = run_tool("compare", base, new)
        self.assertEqual(result.returncode, 1)
        self.assertIn("changed", result.stdout)
        self.assertIn(repr(changed["best_T"]), result.stdout)
        self.assertEqual(run_tool("compare", base, new, "--stat-tolerance", "1e-12").returncode, 0)

    def test_nan_equals_nan(self):
        nan_statistics = dict(STATISTICS, kl_T1=math.nan)
        base, new = self.pair({"A": Bench(STEADY, nan_statistics)}, {"A": Bench(STEADY, nan_statistics)})
        self.assertEqual(run_tool("compare", base, new).returncode, 0)

    def test_missing_benchmark_fails_and_new_one_does_not(self):
        base, new = self.pair({"A": Bench(STEADY), "Gone": Bench(STEADY)},
                              {"A": Bench(STEADY), "Added": Bench(STEADY)})
        result = run_tool("compare", base, new)
        self.assertEqual(result.returncode, 1)
        self.assertRegex(result.stdout, r"\| Gone \|.*missing")
        self.assertRegex(result.stdout, r"\| Added \|.*\| new \|")
        only_added = run_tool("compare", base, new, "--filter", "^(A|Added)$")
        self.assertEqual(only_added.returncode, 0, only_added.stdout)

    def test_no_time_gate(self):
        base, new = self.pair({"A": Bench(STEADY, STATISTICS)},
                              {"A": Bench(scaled(STEADY, 2.0), STATISTICS)})
        self.assertEqual(run_tool("compare", base, new).returncode, 1)
        result = run_tool("compare", base, new, "--no-time-gate")
        self.assertEqual(result.returncode, 0)
        self.assertIn("slower", result.stdout)
        # Statistics still gate without the time gate.
        _, changed = self.pair({"A": Bench(STEADY, STATISTICS)},
                               {"A": Bench(STEADY, dict(STATISTICS, alpha=0.2))})
        self.assertEqual(run_tool("compare", base, changed, "--no-time-gate").returncode, 1)

    def test_markdown_file_holds_the_table(self):
        base, new = self.pair({"A": Bench(STEADY)}, {"A": Bench(STEADY)})
        markdown = os.path.join(self.tmp.name, "table.md")
        result = run_tool("compare", base, new, "--markdown", markdown)
        with open(markdown, encoding="utf-8") as f:
            self.assertEqual(f.read(), result.stdout)

    def test_bad_input_exits_2_with_one_line_naming_the_file(self):
        base, _ = self.pair({"A": Bench(STEADY)}, {"A": Bench(STEADY)})
        not_json = os.path.join(self.tmp.name, "broken.json")
        with open(not_json, "w") as f:
            f.write("{ not json")
        wrong_shape = os.path.join(self.tmp.name, "shape.json")
        with open(wrong_shape, "w") as f:
            json.dump({"results": {}}, f)
        for bad in (not_json, wrong_shape, os.path.join(self.tmp.name, "absent.json")):
            with self.subTest(bad=bad):
                result = run_tool("compare", base, bad)
                self.assertEqual(result.returncode, 2)
                self.assertEqual(len(result.stderr.strip().splitlines()), 1, result.stderr)
                self.assertIn(bad, result.stderr)
                self.assertNotIn("Traceback", result.stderr)

    def test_bad_options_exit_2(self):
        base, new = self.pair({"A": Bench(STEADY)}, {"A": Bench(STEADY)})
        for option in (["--fail-threshold", "ten"], ["--fail-threshold", "10"],
                       ["--alpha", "0"], ["--filter", "("], ["--filter", "^Nothing$"]):
            with self.subTest(option=option):
                self.assertEqual(run_tool("compare", base, new, *option).returncode, 2)


def write_spread(directory, tolerance, by_family=None):
    """A spread file as ci/spread writes it (format 2), with the given {family: {counter: {"rel",
    "abs"}}} tolerances."""
    path = os.path.join(directory, "cpu-spread.json")
    by_family = by_family or {f: {c: {"max_abs": t["abs"] / 2, "max_rel": t["rel"] / 2} for c, t in entries.items()}
                              for f, entries in tolerance.items()}
    counters = {}
    for entries in by_family.values():
        for c, e in entries.items():
            counters[c] = {k: max(e[k], counters.get(c, e)[k]) for k in ("max_abs", "max_rel")}
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"format": 2, "description": "test", "safety_factor": 2.0, "pairs": [], "counters": counters,
                   "by_family": by_family, "tolerance": tolerance, "mismatches": []}, f)
    return path


class CrossMachineTest(unittest.TestCase):
    """compare_runs with per-family, per-counter tolerances from a CPU spread file."""

    TOLERANCE = {"A": {"alpha": (0.08, 0.0), "kl_T1": (0.0, 1e-6), "best_T": (0.0, 0.0)}}

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def compare(self, base_statistics, new_statistics, tolerance=TOLERANCE, name="A/x"):
        base, new = (tstar_results.load_benchmarks(write_run(os.path.join(self.tmp.name, label),
                                                             {name: Bench(STEADY, statistics)}))
                     for label, statistics in (("b", base_statistics), ("n", new_statistics)))
        return tstar_compare.compare_runs(base, new, cross_machine=tolerance)[0]

    def test_within_relative_tolerance_is_ok_with_a_note(self):
        row = self.compare(STATISTICS, dict(STATISTICS, alpha=0.096))
        self.assertEqual((row.status, row.failed, row.stat_changes), ("ok", False, []))
        self.assertIn("1 statistic within the A family's cross-machine tolerance (largest: alpha 4.0% of 8.0% "
                      "allowed)", row.note)
        self.assertEqual(len(row.tolerated), 1)

    def test_largest_is_the_one_using_most_of_its_allowance(self):
        row = self.compare(STATISTICS, dict(STATISTICS, alpha=0.099, kl_T1=2.5e-3 + 9e-7))
        self.assertFalse(row.failed)
        self.assertIn("2 statistics within the A family's cross-machine tolerance (largest: kl_T1 9e-07 of 1e-06 "
                      "allowed (absolute))", row.note)

    def test_the_tolerance_of_the_benchmarks_own_family(self):
        tolerance = {"Layer": {"alpha": (0.02, 1e-5)}, "WeightNoise": {"alpha": (0.08, 4e-5)}}
        moved = (dict(STATISTICS, alpha=5e-4), dict(STATISTICS, alpha=5.3e-4))   # 6%, 3e-5
        self.assertFalse(self.compare(*moved, tolerance, name="WeightNoise/scale:0.02").failed)
        row = self.compare(*moved, tolerance, name="Layer/all/scale:0.02")
        self.assertEqual((row.status, row.stat_changes), ("changed", [("alpha", 5e-4, 5.3e-4)]))
        self.assertFalse(self.compare(dict(STATISTICS, alpha=5e-4), dict(STATISTICS, alpha=5.09e-4), tolerance,
                                      name="Layer/all/scale:0.02").failed)

    def test_a_family_without_an_entry_must_be_identical(self):
        tolerance = {"WeightNoise": {"alpha": (10.0, 10.0)}}
        row = self.compare(STATISTICS, dict(STATISTICS, alpha=0.1000001), tolerance, name="Evolution/prompt:0")
        self.assertEqual(row.status, "changed")
        self.assertIn("no cross-machine tolerance for family Evolution", row.note)
        self.assertFalse(self.compare(STATISTICS, STATISTICS, tolerance, name="Evolution/prompt:0").failed)

    def test_beyond_tolerance_fails(self):
        row = self.compare(STATISTICS, dict(STATISTICS, alpha=0.11))
        self.assertEqual((row.status, row.failed), ("changed", True))
        self.assertEqual(row.stat_changes, [("alpha", 0.1, 0.11)])

    def test_absolute_or_relative(self):
        tolerance = {"A": {"alpha": (0.1, 5e-9)}}
        self.assertFalse(self.compare({"alpha": 1e-9}, {"alpha": 3e-9}, tolerance).failed)
        self.assertFalse(self.compare({"alpha": 100.0}, {"alpha": 109.0}, tolerance).failed)
        self.assertTrue(self.compare({"alpha": 100.0}, {"alpha": 112.0}, tolerance).failed)

    def test_counter_without_entry_or_with_zero_tolerance_must_be_identical(self):
        for changed in (dict(STATISTICS, top1_match=0.7500001), dict(STATISTICS, best_T=1.0123456788)):
            with self.subTest(changed=changed):
                self.assertTrue(self.compare(STATISTICS, changed).failed)

    def test_nan_against_number_never_tolerated(self):
        row = self.compare({"alpha": math.nan}, {"alpha": 0.1}, {"A": {"alpha": (10.0, 10.0)}})
        self.assertTrue(row.failed)
        self.assertFalse(self.compare({"alpha": math.nan}, {"alpha": math.nan}, {"A": {"alpha": (0.0, 0.0)}}).failed)

    def test_identical_rows_have_no_note(self):
        row = self.compare(STATISTICS, STATISTICS)
        self.assertEqual(row.tolerated, [])
        self.assertNotIn("cross-machine", row.note)

    def test_markdown_counts_tolerated_rows(self):
        row = self.compare(STATISTICS, dict(STATISTICS, alpha=0.096))
        table = tstar_compare.markdown_table([row])
        self.assertIn("**passed**: 1 benchmarks compared, 0 failed; 1 with statistics within their family's "
                      "cross-machine tolerance.", table)


class CrossMachineCommandTest(unittest.TestCase):
    """ci/compare --cross-machine FILE."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        # alpha moves by 3.8% (0.004) in both families: within WeightNoise's tolerance, beyond Layer's
        # (2% or 0.001), though within the largest over the families (8%).
        names = ("WeightNoise/scale:0.02", "Layer/all/scale:0.02")
        self.base = write_run(os.path.join(self.tmp.name, "base"), {n: Bench(STEADY, STATISTICS) for n in names})
        self.new = write_run(os.path.join(self.tmp.name, "new"),
                             {n: Bench(STEADY, dict(STATISTICS, alpha=0.104)) for n in names})
        self.spread = write_spread(self.tmp.name, {"WeightNoise": {"alpha": {"rel": 0.08, "abs": 0.0}},
                                                   "Layer": {"alpha": {"rel": 0.02, "abs": 0.001}}})

    def test_within_the_family_tolerance_exits_0_and_says_so(self):
        only = ("--filter", "^WeightNoise/")
        self.assertEqual(run_tool("compare", self.base, self.new, *only).returncode, 1)
        result = run_tool("compare", self.base, self.new, *only, "--cross-machine", self.spread)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertRegex(result.stdout, r"\| WeightNoise/scale:0.02 \|.*\| ok \|.*1 statistic within the WeightNoise "
                                        r"family's cross-machine tolerance \(largest: alpha 3\.8% of 8\.0% allowed\)")
        self.assertIn(f"(cross-machine tolerances per benchmark family: {self.spread})", result.stdout)

    def test_beyond_the_family_tolerance_exits_1_whatever_other_families_allow(self):
        result = run_tool("compare", self.base, self.new, "--cross-machine", self.spread)
        self.assertEqual(result.returncode, 1, result.stdout)
        self.assertRegex(result.stdout, r"\| Layer/all/scale:0.02 \|.*\| \*\*changed\*\* \| alpha: 0.1 → 0.104 \|")
        self.assertRegex(result.stdout, r"\| WeightNoise/scale:0.02 \|.*\| ok \|")

    def test_with_stat_tolerance_is_a_usage_error(self):
        result = run_tool("compare", self.base, self.new, "--cross-machine", self.spread, "--stat-tolerance", "0.1")
        self.assertEqual(result.returncode, 2)
        self.assertIn("not allowed with", result.stderr)

    def test_bad_spread_file_exits_2_with_one_line_naming_it(self):
        broken = os.path.join(self.tmp.name, "broken.json")
        with open(broken, "w") as f:
            f.write("{ nope")
        wrong = os.path.join(self.tmp.name, "wrong.json")
        with open(wrong, "w") as f:
            json.dump({"format": 2, "counters": {}, "by_family": {},
                       "tolerance": {"Layer": {"alpha": {"rel": "5%", "abs": 0}}}}, f)
        old = os.path.join(self.tmp.name, "old.json")
        with open(old, "w") as f:   # format 1: one tolerance per counter for every family
            json.dump({"counters": {"alpha": {"max_abs": 0.0, "max_rel": 0.04}}, "by_family": {"Layer": {"alpha": 0.04}},
                       "tolerance": {"alpha": {"rel": 0.08, "abs": 0.0}}}, f)
        for bad in (broken, wrong, old, os.path.join(self.tmp.name, "absent.json"),
                    os.path.join(self.base, "benchmark.json")):
            with self.subTest(bad=bad):
                result = run_tool("compare", self.base, self.new, "--cross-machine", bad)
                self.assertEqual(result.returncode, 2)
                self.assertEqual(len(result.stderr.strip().splitlines()), 1, result.stderr)
                self.assertIn(bad, result.stderr)
                self.assertNotIn("Traceback", result.stderr)
                if bad == old:
                    self.assertIn("this tool reads format 2 (tolerances per benchmark family): remake it with "
                                  "ci/spread", result.stderr)

    def test_help_documents_the_mode(self):
        text = " ".join(run_tool("compare", "--help").stdout.split())
        self.assertIn("--cross-machine FILE", text)
        self.assertIn("tolerances per benchmark family and counter, derived from the native-vs-reference spread "
                      "measured in that family", text)
        self.assertIn("a family without an entry in FILE, or a counter without one in its family, must be identical",
                      text)


class RealBenchRunTest(unittest.TestCase):
    """One short real `bench` run compared with itself and exported (skipped without bench)."""

    def test_run_compared_with_itself_passes_and_exports_alpha(self):
        bench = os.environ.get("TSTAR_BENCH_PATH")
        if not bench or not os.path.isfile(bench):
            self.skipTest("TSTAR_BENCH_PATH is not set to a built bench")
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([bench, "--results", tmp, "--seeds", "2", "--scales", "0,0.02",
                            "--detail-scales", "0.02",
                            "--benchmark_filter=^(WeightNoise|TempSweep)/",
                            "--benchmark_repetitions=2", "--benchmark_min_time=0.01"],
                           check=True, capture_output=True, timeout=600, cwd=tmp)
            run_dirs = glob.glob(os.path.join(tmp, "*", "benchmark.json"))
            self.assertEqual(len(run_dirs), 1)
            run = os.path.dirname(run_dirs[0])
            result = run_tool("compare", run, run)
            self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
            self.assertIn("WeightNoise/scale:0.02", result.stdout)
            exported = run_tool("export", "--format", "github-action-benchmark", run)
            self.assertEqual(exported.returncode, 0, exported.stderr)
            names = {entry["name"] for entry in json.loads(exported.stdout)}
            self.assertTrue(any(name.endswith(" :: alpha") for name in names), names)


if __name__ == "__main__":
    unittest.main()
