"""ci/export: github-action-benchmark custom JSON and Bencher Metric Format from crafted runs."""

import json
import math
import os
import statistics
import tempfile
import unittest

from crafted_runs import Bench, run_tool, write_run

TIMES_MS = [8.0, 9.0, 8.5, 10.0]
WEIGHT_NOISE = Bench(TIMES_MS, {"alpha": 0.0123456789012345, "best_T": 1.25, "kl_T1": math.nan},
                     rates={"tokens_per_s": [100.0, 90.0, 95.0, 80.0]})
TOKENIZER = Bench([1.5, 1.7], {"vocab": 151646.0}, time_unit="us")


class ExportTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.run_dir = write_run(os.path.join(self.tmp.name, "run"),
                                 {"WeightNoise/scale:0.01": WEIGHT_NOISE, "Tokenizer/encode": TOKENIZER,
                                  "Broken": Bench([1.0], error="no model")})

    def export(self, *args):
        result = run_tool("export", *args)
        self.assertEqual(result.returncode, 0, result.stderr)
        return self.strict_json(result.stdout)

    def strict_json(self, text):
        """Parsed JSON, failing on NaN/Infinity, which the dashboards' strict parsers reject."""
        return json.loads(text, parse_constant=lambda name: self.fail(f"non-standard JSON: {name}"))

    def test_github_action_benchmark_times_and_statistics(self):
        entries = {e["name"]: e for e in self.export("--format", "github-action-benchmark", self.run_dir)}
        time = entries["WeightNoise/scale:0.01"]
        self.assertEqual(time["unit"], "ms")
        self.assertAlmostEqual(time["value"], statistics.median(TIMES_MS))
        self.assertIn(f"{statistics.stdev(TIMES_MS):.6g}", time["range"])
        self.assertEqual(entries["Tokenizer/encode"]["unit"], "us")
        self.assertAlmostEqual(entries["Tokenizer/encode"]["value"], 1.6)
        alpha = entries["WeightNoise/scale:0.01 :: alpha"]
        self.assertEqual(alpha["value"], 0.0123456789012345)   # exact, not rounded
        self.assertEqual(entries["Tokenizer/encode :: vocab"]["value"], 151646.0)
        for entry in entries.values():
            self.assertTrue({"name", "unit", "value"} <= set(entry), entry)
            self.assertIsInstance(entry["value"], float)
        # NaN cannot be a JSON number, rates are bigger-is-better (--only rates), failed runs have no time.
        self.assertNotIn("WeightNoise/scale:0.01 :: kl_T1", entries)
        self.assertNotIn("WeightNoise/scale:0.01 :: tokens_per_s", entries)
        self.assertNotIn("Broken", entries)

    def test_github_action_benchmark_rates_only(self):
        entries = self.export("--format", "github-action-benchmark", "--only", "rates", self.run_dir)
        self.assertEqual([e["name"] for e in entries], ["WeightNoise/scale:0.01 :: tokens_per_s"])
        self.assertEqual(entries[0]["value"], 92.5)

    def test_bencher_metric_format(self):
        document = self.export("--format", "bencher", self.run_dir)
        measures = document["WeightNoise/scale:0.01"]
        self.assertEqual(measures["latency"], {"value": statistics.median(TIMES_MS) * 1e6,
                                               "lower_value": 8.0e6, "upper_value": 10.0e6})
        self.assertEqual(measures["tokens-per-s"], {"value": 92.5, "lower_value": 80.0,
                                                    "upper_value": 100.0})
        self.assertEqual(measures["alpha"], {"value": 0.0123456789012345})
        self.assertEqual(measures["best-t"], {"value": 1.25})
        self.assertNotIn("kl-t1", measures)
        self.assertAlmostEqual(document["Tokenizer/encode"]["latency"]["value"], 1600.0)
        self.assertNotIn("Broken", document)
        for benchmark in document.values():
            for slug in benchmark:
                self.assertRegex(slug, r"^[a-z0-9]+(-[a-z0-9]+)*$")

    def test_output_file_is_strict_json(self):
        for format_name in ("github-action-benchmark", "bencher"):
            output = os.path.join(self.tmp.name, f"{format_name}.json")
            result = run_tool("export", "--format", format_name, self.run_dir, "-o", output)
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertEqual(result.stdout, "")
            with open(output, encoding="utf-8") as f:
                self.strict_json(f.read())

    def test_colliding_measure_slugs_are_refused(self):
        run = write_run(os.path.join(self.tmp.name, "clash"),
                        {"A": Bench([1.0, 1.1], {"best_T": 1.0, "best_t": 2.0})})
        result = run_tool("export", "--format", "bencher", run)
        self.assertEqual(result.returncode, 2)
        self.assertIn("best-t", result.stderr)

    def test_bad_input_exits_2_with_one_line(self):
        missing = os.path.join(self.tmp.name, "absent")
        result = run_tool("export", "--format", "bencher", missing)
        self.assertEqual(result.returncode, 2)
        self.assertEqual(len(result.stderr.strip().splitlines()), 1)
        self.assertIn(missing, result.stderr)
        self.assertEqual(run_tool("export", "--format", "csv", self.run_dir).returncode, 2)
        self.assertEqual(run_tool("export", "--format", "bencher", "--only", "x", self.run_dir).returncode, 2)


if __name__ == "__main__":
    unittest.main()
