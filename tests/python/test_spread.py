"""ci/spread and ci/tstar_spread.py: the native-vs-reference CPU spread on crafted run pairs."""

import json
import math
import os
import tempfile
import unittest

from crafted_runs import Bench, run_tool, write_run
import tstar_results
import tstar_spread

TIMES = [10.0, 10.1, 9.9]
MODEL = {"architecture": "Qwen2ForCausalLM", "dtype": "bf16", "model": "/root/.cache/tstar/m",
         "weight_files_sha256": {"model.safetensors": "be01"}}
SUITE = {"tstar_seeds": "[0,1]", "tstar_scales": "[0.0,0.005,0.02]", "tstar_detail_scales": "[0.02]",
         "tstar_prompts_sha256": "8609", "tstar_model": json.dumps(MODEL)}

# The reference run and a native run whose statistics moved: WeightNoise/scale:0.005 alpha by 3.85%
# (the largest relative change), WeightNoise/scale:0.02 alpha by 2e-5 absolute (the largest absolute),
# Layer/all alpha by 0.99% (5e-6 absolute): far less than the WeightNoise family's spread.
REFERENCE = {
    "WeightNoise/scale:0/real_time": Bench(TIMES, {"alpha": 0.0, "best_T": 1.0, "kl_T1": 0.0},
                                           rates={"tokens_per_s": [100.0, 101.0, 99.0]}),
    "WeightNoise/scale:0.005/real_time": Bench(TIMES, {"alpha": 6.25e-05, "best_T": 1.0001, "kl_T1": 2e-7}),
    "WeightNoise/scale:0.02/real_time": Bench(TIMES, {"alpha": 1.0e-3, "best_T": 1.03, "kl_T1": math.nan}),
    "Layer/all/scale:0.02/real_time": Bench(TIMES, {"alpha": 5.0e-4, "best_T": 1.02, "tensors": 29.0}),
    "Only/in/reference": Bench(TIMES, {"alpha": 1.0}),
}
NATIVE = {
    "WeightNoise/scale:0/real_time": Bench(TIMES, {"alpha": 0.0, "best_T": 1.0, "kl_T1": 0.0},
                                           rates={"tokens_per_s": [500.0, 501.0, 499.0]}),
    "WeightNoise/scale:0.005/real_time": Bench(TIMES, {"alpha": 6.5e-05, "best_T": 1.0001, "kl_T1": 2e-7}),
    "WeightNoise/scale:0.02/real_time": Bench(TIMES, {"alpha": 1.02e-3, "best_T": 1.0301, "kl_T1": math.nan,
                                                      "native_only": 3.0}),
    "Layer/all/scale:0.02/real_time": Bench(TIMES, {"alpha": 5.05e-4, "best_T": 1.02, "tensors": 29.0}),
    "Only/in/native": Bench(TIMES, {"alpha": 2.0}),
}

# The same without what ci/compare would fail on anyway (a benchmark or counter only one run has).
COMPARABLE_REFERENCE = {name: bench for name, bench in REFERENCE.items() if not name.startswith("Only/")}
COMPARABLE_NATIVE = dict({name: bench for name, bench in NATIVE.items() if not name.startswith("Only/")},
                         **{"WeightNoise/scale:0.02/real_time": Bench(TIMES, {"alpha": 1.02e-3, "best_T": 1.0301,
                                                                              "kl_T1": math.nan})})


def strict_json(path):
    """The file as JSON, refusing the bare NaN/Infinity that strict JSON has no room for."""
    def refuse(constant):
        raise ValueError(f"{path}: non-standard JSON constant {constant}")
    with open(path, encoding="utf-8") as f:
        return json.load(f, parse_constant=refuse)


class SpreadTestCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def run_dir(self, label, benchmarks, context=None, provenance=None):
        directory = write_run(os.path.join(self.tmp.name, label), benchmarks, dict(SUITE, **(context or {})))
        if provenance is not None:
            with open(os.path.join(directory, "results.json"), "w", encoding="utf-8") as f:
                json.dump({"provenance": provenance, "settings": {}, "results": {}}, f)
        return directory

    def pair(self, native=NATIVE, reference=REFERENCE, native_context=None, reference_context=None):
        return (self.run_dir("native", native, native_context),
                self.run_dir("reference", reference, reference_context))


class DifferenceTest(unittest.TestCase):
    def test_identical_nan_and_zero(self):
        self.assertEqual(tstar_spread.difference(0.5, 0.5), (0.0, 0.0))
        self.assertEqual(tstar_spread.difference(math.nan, math.nan), (0.0, 0.0))
        self.assertEqual(tstar_spread.difference(0.0, -0.0), (0.0, 0.0))
        self.assertEqual(tstar_spread.difference(math.inf, math.inf), (0.0, 0.0))

    def test_absolute_and_relative(self):
        absolute, relative = tstar_spread.difference(1.0, 0.96)
        self.assertAlmostEqual(absolute, 0.04)
        self.assertAlmostEqual(relative, 0.04)
        self.assertEqual(tstar_spread.difference(0.0, -2.0), (2.0, 1.0))

    def test_nan_or_infinity_against_a_number_is_no_difference_at_all(self):
        self.assertIsNone(tstar_spread.difference(math.nan, 1.0))
        self.assertIsNone(tstar_spread.difference(0.0, math.nan))
        self.assertIsNone(tstar_spread.difference(math.inf, 1.0))

    def test_within(self):
        self.assertTrue(tstar_spread.within(1.0, 1.04, (0.05, 0.0)))
        self.assertFalse(tstar_spread.within(1.0, 1.06, (0.05, 0.0)))
        self.assertTrue(tstar_spread.within(1.0, 1.06, (0.05, 0.1)))
        self.assertFalse(tstar_spread.within(math.nan, 1.0, (1.0, 1.0)))

    def test_spread_of_is_the_relative_spread_times_the_value(self):
        self.assertAlmostEqual(tstar_spread.spread_of(2.0, 0.1), 0.2)
        self.assertAlmostEqual(tstar_spread.spread_of(-0.1, 0.1), 0.01)
        self.assertEqual(tstar_spread.spread_of(0.0, 0.1), 0.0)
        self.assertTrue(math.isnan(tstar_spread.spread_of(math.nan, 0.1)))

    def test_lookup_by_the_family_of_the_benchmark(self):
        tolerances = {"Layer": {"alpha": (0.02, 1e-5)}, "WeightNoise": {"alpha": (0.08, 4e-5)}}
        self.assertEqual(tstar_spread.family_of("Layer/all/scale:0.02/real_time"), "Layer")
        self.assertEqual(tstar_spread.family_of("Synthetic"), "Synthetic")
        self.assertEqual(tstar_spread.lookup(tolerances, "Layer/all/scale:0.02/real_time", "alpha"), (0.02, 1e-5))
        self.assertEqual(tstar_spread.lookup(tolerances, "WeightNoise/scale:0/real_time", "alpha"), (0.08, 4e-5))
        self.assertIsNone(tstar_spread.lookup(tolerances, "Layer/all/scale:0.02/real_time", "best_T"))
        self.assertIsNone(tstar_spread.lookup(tolerances, "Evolution/prompt:0/scale:0.02/real_time", "alpha"))


class MeasureTest(SpreadTestCase):
    def test_largest_differences_per_counter(self):
        doc = tstar_spread.measure([self.pair()], safety_factor=2.0)
        alpha = doc["counters"]["alpha"]
        self.assertAlmostEqual(alpha["max_rel"], (6.5e-05 - 6.25e-05) / 6.5e-05)
        self.assertAlmostEqual(alpha["max_abs"], 2e-5)
        self.assertEqual(alpha["worst_benchmark"], "WeightNoise/scale:0.005/real_time")
        self.assertEqual((alpha["benchmarks"], alpha["differing"]), (4, 3))
        self.assertAlmostEqual(doc["counters"]["best_T"]["max_abs"], 1e-4, delta=1e-12)
        self.assertEqual(doc["counters"]["tensors"], {"max_abs": 0.0, "max_rel": 0.0, "benchmarks": 1,
                                                      "differing": 0,
                                                      "worst_benchmark": "Layer/all/scale:0.02/real_time"})
        # NaN in both runs is identical; rates, times and one-sided counters/benchmarks are not compared.
        self.assertEqual(doc["counters"]["kl_T1"]["max_rel"], 0.0)
        self.assertEqual(doc["counters"]["kl_T1"]["benchmarks"], 3)
        self.assertNotIn("tokens_per_s", doc["counters"])
        self.assertNotIn("native_only", doc["counters"])
        self.assertEqual(doc["pairs"][0]["shared_benchmarks"], 4)
        self.assertEqual(doc["mismatches"], [])

    def test_tolerance_is_the_safety_factor_times_the_spread_of_the_family(self):
        doc = tstar_spread.measure([self.pair()], safety_factor=3.0)
        self.assertEqual((doc["format"], doc["safety_factor"]), (2, 3.0))
        self.assertEqual(set(doc["tolerance"]), {"WeightNoise", "Layer"})
        for family, entries in doc["by_family"].items():
            self.assertEqual(set(doc["tolerance"][family]), set(entries))
            for counter, entry in entries.items():
                self.assertEqual(doc["tolerance"][family][counter],
                                 {"rel": 3.0 * entry["max_rel"], "abs": 3.0 * entry["max_abs"]})
        # Layer's alpha tolerance is its own (0.99%, 5e-6), not the global maxima (3.85%, 2e-5).
        self.assertAlmostEqual(doc["tolerance"]["Layer"]["alpha"]["rel"], 3.0 * 0.05e-4 / 5.05e-4)
        self.assertAlmostEqual(doc["tolerance"]["Layer"]["alpha"]["abs"], 3.0 * 5e-6)
        self.assertEqual(doc["tolerance"]["Layer"]["best_T"], {"rel": 0.0, "abs": 0.0})
        description = " ".join(doc["description"].split())
        self.assertIn("|a-b| <= tolerance[F][c].abs, or |a-b| <= tolerance[F][c].rel * max(|a|,|b|)", description)
        self.assertIn("must be bit-identical", description)

    def test_by_family(self):
        doc = tstar_spread.measure([self.pair()])
        self.assertEqual(set(doc["by_family"]), {"WeightNoise", "Layer"})
        layer, weight_noise = doc["by_family"]["Layer"], doc["by_family"]["WeightNoise"]
        self.assertEqual(set(layer), {"alpha", "best_T", "tensors"})
        self.assertAlmostEqual(layer["alpha"]["max_rel"], 0.05e-4 / 5.05e-4)
        self.assertAlmostEqual(layer["alpha"]["max_abs"], 5e-6)
        self.assertEqual(layer["alpha"]["worst_benchmark"], "Layer/all/scale:0.02/real_time")
        self.assertEqual((layer["alpha"]["benchmarks"], layer["alpha"]["differing"]), (1, 1))
        self.assertEqual((layer["tensors"]["max_rel"], layer["tensors"]["max_abs"], layer["tensors"]["differing"]),
                         (0.0, 0.0, 0))
        self.assertAlmostEqual(weight_noise["alpha"]["max_rel"], (6.5e-05 - 6.25e-05) / 6.5e-05)
        self.assertAlmostEqual(weight_noise["alpha"]["max_abs"], 2e-5)
        self.assertEqual(weight_noise["alpha"]["worst_benchmark"], "WeightNoise/scale:0.005/real_time")
        self.assertEqual((weight_noise["alpha"]["benchmarks"], weight_noise["alpha"]["differing"]), (3, 2))
        self.assertAlmostEqual(weight_noise["best_T"]["max_abs"], 1e-4, delta=1e-12)
        # The global 'counters' are the largest over the families.
        for counter in ("alpha", "best_T"):
            for key in ("max_abs", "max_rel"):
                self.assertEqual(doc["counters"][counter][key],
                                 max(layer[counter][key], weight_noise[counter][key]))

    def test_nan_against_a_number_is_a_reported_mismatch(self):
        native = dict(NATIVE)
        native["WeightNoise/scale:0.02/real_time"] = Bench(TIMES, {"alpha": 1.0e-3, "best_T": 1.03, "kl_T1": 0.25})
        doc = tstar_spread.measure([self.pair(native=native)])
        self.assertEqual(doc["mismatches"], [{"benchmark": "WeightNoise/scale:0.02/real_time", "counter": "kl_T1",
                                              "native": 0.25, "reference": None}])
        self.assertEqual(doc["counters"]["kl_T1"]["differing"], 1)
        self.assertIn("NaN against a number", tstar_spread.markdown(doc))

    def test_several_pairs_take_the_largest(self):
        bigger = dict(NATIVE)
        bigger["Layer/all/scale:0.02/real_time"] = Bench(TIMES, {"alpha": 7.5e-4, "best_T": 1.02, "tensors": 29.0})
        first = self.pair()
        second = (self.run_dir("native2", bigger), first[1])
        doc = tstar_spread.measure([first, second])
        self.assertEqual(len(doc["pairs"]), 2)
        self.assertAlmostEqual(doc["counters"]["alpha"]["max_abs"], 2.5e-4)
        self.assertAlmostEqual(doc["counters"]["alpha"]["max_rel"], 2.5e-4 / 7.5e-4)
        self.assertEqual(doc["counters"]["alpha"]["benchmarks"], 8)
        layer = doc["by_family"]["Layer"]["alpha"]
        self.assertAlmostEqual(layer["max_rel"], 2.5e-4 / 7.5e-4)
        self.assertEqual((layer["benchmarks"], layer["differing"]), (2, 2))
        # WeightNoise keeps its own spread: the larger Layer difference of the second pair is not its.
        self.assertAlmostEqual(doc["by_family"]["WeightNoise"]["alpha"]["max_abs"], 2e-5)

    def test_different_settings_are_refused(self):
        for key, value in (("tstar_seeds", "[0,1,2]"), ("tstar_scales", "[0.0,0.01]"),
                           ("tstar_prompts_sha256", "ffff"),
                           ("tstar_model", json.dumps(dict(MODEL, dtype="fp32")))):
            with self.subTest(key=key):
                native, reference = self.pair(native_context={key: value})
                with self.assertRaises(tstar_spread.SpreadError) as caught:
                    tstar_spread.measure([(native, reference)])
                self.assertIn(key, str(caught.exception))
                self.assertIn(native, str(caught.exception))

    def test_same_model_in_another_directory_and_a_key_only_one_run_has_are_accepted(self):
        moved = json.dumps(dict(MODEL, model="/home/ci/.cache/tstar/m"))
        native, reference = self.pair(native_context={"tstar_model": moved, "tstar_cpu_model": "Xeon"})
        doc = tstar_spread.measure([(native, reference)])
        self.assertEqual(doc["pairs"][0]["native"]["cpu_model"], "Xeon")

    def test_no_shared_benchmark_is_refused(self):
        native, reference = self.pair(native={"A": Bench(TIMES, {"alpha": 1.0})},
                                      reference={"B": Bench(TIMES, {"alpha": 1.0})})
        with self.assertRaisesRegex(tstar_spread.SpreadError, "no benchmark in common"):
            tstar_spread.measure([(native, reference)])

    def test_machine_summary_from_provenance_and_context(self):
        native = self.run_dir("native", NATIVE, {"tstar_openblas_core": "SkylakeX", "tstar_tstar_commit": "aaa",
                                                 "tstar_threads": "1"},
                              provenance={"cpu_model": "Intel Xeon 8480", "compute_profile": "native",
                                          "openblas_core": "SapphireRapids", "bf16_matmul_path": "onednn",
                                          "libtorch_cpu_capability": "avx512", "threads": 2})
        reference = self.run_dir("reference", REFERENCE, {"tstar_compute_profile": "reference",
                                                          "tstar_bf16_matmul_path": "libtorch",
                                                          "tstar_libtorch_cpu_capability": "avx2"})
        pair = tstar_spread.measure([(os.path.join(native, "benchmark.json"), reference)])["pairs"][0]
        self.assertEqual(pair["native"], {"run": os.path.join(native, "benchmark.json"),
                                          "date": "2026-11-28T00:00:00+00:00", "cpu_model": "Intel Xeon 8480",
                                          "compute_profile": "native", "openblas_core": "SapphireRapids",
                                          "bf16_matmul_path": "onednn", "libtorch_cpu_capability": "avx512",
                                          "threads": 2, "tstar_commit": "aaa"})
        self.assertEqual(pair["reference"], {"run": reference, "date": "2026-11-28T00:00:00+00:00",
                                             "compute_profile": "reference", "bf16_matmul_path": "libtorch",
                                             "libtorch_cpu_capability": "avx2"})
        table = tstar_spread.markdown(tstar_spread.measure([(native, reference)]))
        self.assertIn("(Intel Xeon 8480, compute profile native, openblas core SapphireRapids, bf16 matmul path "
                      "onednn, libtorch cpu capability avx512, threads 2, tstar commit aaa)", table)

    def test_markdown_lists_moving_counters_per_family_by_relative_spread(self):
        table = tstar_spread.markdown(tstar_spread.measure([self.pair()]))
        rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| Family")]
        self.assertEqual([tuple(row.split(" | ")[:2]) for row in rows],
                         [("| WeightNoise", "alpha"), ("| WeightNoise", "best_T"), ("| Layer", "alpha")])
        self.assertIn("WeightNoise/scale:0.005/real_time", rows[0])
        self.assertIn("| 3.85% |", rows[0])
        self.assertIn("| 2e-05 |", rows[0])
        self.assertIn("| 0.99% | Layer/all/scale:0.02/real_time | 1 of 1 | 1.98% | 1e-05 |", rows[2])
        self.assertRegex(table, r"Identical in every shared benchmark \(2\): kl_T1, tensors")


class LoadTest(SpreadTestCase):
    def write(self, name, doc):
        path = os.path.join(self.tmp.name, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(doc if isinstance(doc, str) else json.dumps(doc))
        return path

    def test_round_trip(self):
        doc = tstar_spread.measure([self.pair()])
        path = self.write("spread.json", doc)
        tolerances, measured = tstar_spread.load_tolerances(path), tstar_spread.load_measured(path)
        self.assertEqual(set(tolerances), {"WeightNoise", "Layer"})
        for family in ("WeightNoise", "Layer"):
            tolerance, entry = doc["tolerance"][family]["alpha"], doc["by_family"][family]["alpha"]
            self.assertEqual(tolerances[family]["alpha"], (tolerance["rel"], tolerance["abs"]))
            self.assertEqual(measured[family]["alpha"], (entry["max_rel"], entry["max_abs"]))
        self.assertNotEqual(tolerances["Layer"]["alpha"], tolerances["WeightNoise"]["alpha"])

    def test_another_format_is_refused_naming_the_file(self):
        current = tstar_spread.measure([self.pair()])
        old = {k: v for k, v in current.items() if k not in ("format", "by_family")}
        old["tolerance"] = {c: {"rel": 2 * e["max_rel"], "abs": 2 * e["max_abs"]}
                            for c, e in current["counters"].items()}
        for label, content, words in (("format1", old, ["no 'format' key", "format 1"]),
                                      ("format3", dict(current, format=3), ["format 3"]),
                                      ("text", dict(current, format="2"), ["format '2'"])):
            with self.subTest(label=label):
                path = self.write(f"{label}.json", content)
                with self.assertRaises(tstar_spread.SpreadError) as caught:
                    tstar_spread.load(path)
                for word in [path, "reads format 2", "ci/spread"] + words:
                    self.assertIn(word, str(caught.exception))

    def test_bad_files_name_the_file(self):
        good = {"format": 2, "counters": {"alpha": {"max_abs": 1.0, "max_rel": 0.1}},
                "by_family": {"Layer": {"alpha": {"max_abs": 1.0, "max_rel": 0.1}}},
                "tolerance": {"Layer": {"alpha": {"rel": 0.2, "abs": 2.0}}}}
        for label, content in (("list", []), ("no-tolerance", dict(good, tolerance=None)),
                               ("no-by-family", {k: v for k, v in good.items() if k != "by_family"}),
                               ("negative", dict(good, tolerance={"Layer": {"alpha": {"rel": -1.0, "abs": 0.0}}})),
                               ("text", dict(good, counters={"alpha": {"max_abs": "1", "max_rel": 0.1}})),
                               ("family-text", dict(good, by_family={"Layer": {"alpha": {"max_abs": 1.0,
                                                                                         "max_rel": "10%"}}})),
                               ("flat", dict(good, tolerance={"alpha": {"rel": 0.2, "abs": 2.0}})),
                               ("missing", dict(good, tolerance={"Layer": {"alpha": {"rel": 0.1}}}))):
            with self.subTest(label=label):
                path = self.write(f"{label}.json", content)
                with self.assertRaises(tstar_spread.SpreadError) as caught:
                    tstar_spread.load(path)
                self.assertIn(path, str(caught.exception))
        with self.assertRaises(tstar_results.ResultsError):
            tstar_spread.load(self.write("broken.json", "{ nope"))


class SpreadCommandTest(SpreadTestCase):
    def test_writes_strict_json_and_prints_the_table(self):
        native, reference = self.pair()
        out = os.path.join(self.tmp.name, "spread.json")
        result = run_tool("spread", "--pair", native, reference, "--out", out, "--safety-factor", "3")
        self.assertEqual(result.returncode, 0, result.stderr)
        doc = strict_json(out)
        self.assertEqual(set(doc), {"format", "description", "safety_factor", "pairs", "counters", "by_family",
                                    "tolerance", "mismatches"})
        self.assertEqual(doc["format"], 2)
        self.assertIn("| Layer | alpha |", result.stdout)
        self.assertEqual(doc["safety_factor"], 3.0)
        self.assertIn("| alpha |", result.stdout)
        self.assertIn(native, result.stdout)

    def test_mismatch_is_written_as_null_and_warned_about(self):
        native = dict(NATIVE)
        native["WeightNoise/scale:0.02/real_time"] = Bench(TIMES, {"alpha": 1.0e-3, "kl_T1": 0.25})
        native_dir, reference = self.pair(native=native)
        out = os.path.join(self.tmp.name, "spread.json")
        result = run_tool("spread", "--pair", native_dir, reference, "--out", out)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(strict_json(out)["mismatches"][0]["reference"], None)
        self.assertIn("NaN", result.stderr)

    def test_spread_file_lets_compare_pass_the_measured_pair_and_nothing_bigger(self):
        shared = ("WeightNoise/scale:0/real_time", "WeightNoise/scale:0.005/real_time",
                  "Layer/all/scale:0.02/real_time")
        native, reference = self.pair(native={name: NATIVE[name] for name in shared},
                                      reference={name: REFERENCE[name] for name in shared})
        out = os.path.join(self.tmp.name, "spread.json")
        self.assertEqual(run_tool("spread", "--pair", native, reference, "--out", out).returncode, 0)
        self.assertEqual(run_tool("compare", reference, native).returncode, 1)
        for base, new in ((reference, native), (native, reference)):
            result = run_tool("compare", base, new, "--no-time-gate", "--cross-machine", out)
            self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
            self.assertIn("2 with statistics within their family's cross-machine tolerance", result.stdout)
            self.assertIn("within the Layer family's cross-machine tolerance", result.stdout)

    def test_within_the_global_but_beyond_the_family_spread_fails(self):
        # Layer/all alpha 5e-4 -> 5.3e-4 (6%, 3e-5): within the largest spread of alpha over all
        # families times 2 (7.7% relative and 4e-5 absolute, both from WeightNoise), beyond Layer's own
        # (2 x 0.99% and 2 x 5e-6).
        native, reference = self.pair(native=COMPARABLE_NATIVE, reference=COMPARABLE_REFERENCE)
        out = os.path.join(self.tmp.name, "spread.json")
        self.assertEqual(run_tool("spread", "--pair", native, reference, "--out", out).returncode, 0)
        self.assertEqual(run_tool("compare", reference, native, "--no-time-gate", "--cross-machine", out).returncode, 0)
        doc = strict_json(out)
        moved = dict(COMPARABLE_NATIVE)
        moved["Layer/all/scale:0.02/real_time"] = Bench(TIMES, {"alpha": 5.3e-4, "best_T": 1.02, "tensors": 29.0})
        glob = doc["counters"]["alpha"]
        self.assertTrue(tstar_spread.within(5.0e-4, 5.3e-4, (2 * glob["max_rel"], 2 * glob["max_abs"])))
        self.assertTrue(tstar_spread.within(5.0e-4, 5.3e-4, (2 * glob["max_rel"], 0.0)))
        self.assertTrue(tstar_spread.within(5.0e-4, 5.3e-4, (0.0, 2 * glob["max_abs"])))
        result = run_tool("compare", reference, self.run_dir("moved", moved), "--no-time-gate", "--cross-machine", out)
        self.assertEqual(result.returncode, 1, result.stdout)
        self.assertRegex(result.stdout, r"\| Layer/all/scale:0.02/real_time \|.*changed.*alpha")
        self.assertNotRegex(result.stdout, r"\| WeightNoise/.*changed")

    def test_within_one_family_the_rule_is_abs_or_rel(self):
        # Within one family the rule is still abs OR rel: WeightNoise alpha moved by 2e-5 where it is
        # 1e-3, so its alpha of 6.25e-5 may fall to 5e-5 (20%, 1.25e-5 <= 2 x 2e-5) but not to 2e-5
        # (4.25e-5). The absolute allowance is WeightNoise's own, not Layer's or another family's.
        native, reference = self.pair(native=COMPARABLE_NATIVE, reference=COMPARABLE_REFERENCE)
        out = os.path.join(self.tmp.name, "spread.json")
        self.assertEqual(run_tool("spread", "--pair", native, reference, "--out", out).returncode, 0)
        for alpha, code in ((5.0e-5, 0), (2.0e-5, 1)):
            with self.subTest(alpha=alpha):
                moved = dict(COMPARABLE_NATIVE)
                moved["WeightNoise/scale:0.005/real_time"] = Bench(TIMES, {"alpha": alpha, "best_T": 1.0001,
                                                                           "kl_T1": 2e-7})
                result = run_tool("compare", reference, self.run_dir(f"moved{alpha}", moved), "--no-time-gate",
                                  "--cross-machine", out)
                self.assertEqual(result.returncode, code, result.stdout)

    def test_bad_input_exits_2_with_one_line(self):
        native, reference = self.pair(native_context={"tstar_seeds": "[5]"})
        out = os.path.join(self.tmp.name, "spread.json")
        absent = os.path.join(self.tmp.name, "absent")
        for args, words in ((["--pair", native, reference], ["tstar_seeds", native, reference]),
                            (["--pair", absent, reference], [absent]),
                            (["--pair", reference, reference, "--out", os.path.join(absent, "x.json")],
                             ["cannot write"])):
            with self.subTest(args=args):
                result = run_tool("spread", *args, *([] if "--out" in args else ["--out", out]))
                self.assertEqual(result.returncode, 2, result.stdout)
                lines = result.stderr.strip().splitlines()
                self.assertEqual(len(lines), 1, result.stderr)
                self.assertNotIn("Traceback", result.stderr)
                for word in words:
                    self.assertIn(word, lines[0])
        self.assertFalse(os.path.exists(out))

    def test_bad_usage_exits_2(self):
        native, reference = self.pair()
        out = os.path.join(self.tmp.name, "spread.json")
        for args in ([], ["--pair", native, reference], ["--pair", native, "--out", out],
                     ["--pair", native, reference, "--out", out, "--safety-factor", "0.5"],
                     ["--pair", native, reference, "--out", out, "--safety-factor", "two"]):
            with self.subTest(args=args):
                self.assertEqual(run_tool("spread", *args).returncode, 2)


if __name__ == "__main__":
    unittest.main()
