"""ci/report on results.json in the current format: families ("families") and each result's
"family" and "instance" decide the sections, not the benchmark names; the one legacy adapter for
runs written before; the section modules' shared interface and their discovery by name.

Run: cd tests/python && TSTAR_SOURCE_DIR=$PWD/../.. /usr/bin/python3 -m unittest -v test_report_format
"""

import ast
import glob
import json
import os
import sys
import unittest

from new_format import FAMILIES, new_format, renamed
from test_report import (FIGURES, SOURCE_DIR, ReportTestCase, run_report, section, synthetic_benchmark_json,
                         synthetic_results, table_rows)

CI_DIR = os.path.join(SOURCE_DIR, "ci")
PACKAGE = os.path.join(CI_DIR, "tstar_report")
BASELINE = os.path.join(SOURCE_DIR, "results", "baseline", "embedded-smoke")
sys.path.insert(0, CI_DIR)

from tstar_report import legacy, sections  # noqa: E402


def baseline_doc():
    with open(os.path.join(BASELINE, "results.json"), encoding="utf-8") as f:
        return json.load(f)


class FormatTestCase(ReportTestCase):
    def report(self, doc, name="run", benchmark=None):
        """(summary.md, sorted files of the output directory) of a successful report."""
        summary, out_dir = self.report_on(doc, "--cpu-spread", "none", name=name, benchmark=benchmark)
        # The run directory's name is the only thing that may differ between two runs' reports.
        summary = summary.replace(f"# tstar report: {name}\n", "# tstar report: RUN\n")
        return summary.replace(f"| run | {name} |", "| run | RUN |"), sorted(os.listdir(out_dir))


class NewFormatTest(FormatTestCase):
    def test_baseline_in_the_new_format_reports_as_the_legacy_one(self):
        # The committed baseline, and the same run as bench writes it now: the same report.
        legacy_summary, legacy_files = self.report(baseline_doc(), name="legacy")
        summary, files = self.report(new_format(baseline_doc()), name="current")
        self.assertEqual(summary, legacy_summary)
        self.assertEqual(files, legacy_files)
        self.assertEqual(files, sorted(FIGURES + ("summary.md",)))

    def test_sections_come_from_family_and_instance_not_from_the_name(self):
        doc = new_format(synthetic_results())
        expected, files = self.report(doc, name="named")
        # Names that say nothing: every section and table must still be the same.
        opaque = renamed(doc, lambda name, value: f"result-{sorted(doc['results']).index(name)}")
        summary, opaque_files = self.report(opaque, name="opaque")
        self.assertEqual(summary, expected)
        self.assertEqual(opaque_files, files)
        # A name that says another family and scale is not believed either.
        lying = renamed(doc, lambda name, value: "Evolution/prompt:9/scale:7/" + name)
        self.assertEqual(self.report(lying, name="lying")[0], expected)

    def test_instance_decides_scale_group_and_prompt(self):
        doc = new_format(synthetic_results(families=("Layer",)))
        doc["results"]["Layer/attention/scale:0.01"]["instance"]["group"] = "renamed-group"
        summary, _ = self.report(doc)
        groups = {row[1] for row in table_rows(section(summary, "## Experiment 2"))}
        self.assertIn("renamed-group", groups)
        self.assertNotIn("Scale 0.5", summary)
        doc["results"]["Layer/attention/scale:0.01"]["instance"]["scale"] = 0.5
        summary, _ = self.report(doc, name="moved")
        self.assertIn("Scale 0.5: most sensitive renamed-group", summary)

    def test_unknown_section_gets_a_generic_counters_table(self):
        doc = new_format(synthetic_results(families=("WeightNoise",)))
        doc["families"].append({"name": "Quantize", "pattern": "Quantize/bits:<b>", "section": "quantization",
                                "description": "weights rounded to fewer bits"})
        for bits in (4, 8):
            doc["results"][f"Quantize/bits:{bits}"] = {
                "family": "Quantize", "instance": {"bits": bits},
                "counters": {"alpha": 0.01 / bits, "best_T": 1 + 0.1 / bits}, "details": {"note": "x"}}
        summary, files = self.report(doc)
        text = section(summary, "## Quantize: weights rounded to fewer bits")
        self.assertIn('No section module renders "quantization"', text)
        rows = table_rows(text)
        self.assertEqual([row[:2] for row in rows], [["`Quantize/bits:4`", "bits 4"], ["`Quantize/bits:8`", "bits 8"]])
        self.assertEqual([float(row[2]) for row in rows], [0.0025, 0.00125])
        self.assertIn("| benchmark | instance | alpha | best_T |", text)
        self.assertLess(summary.index("## Which T* predictor"), summary.index("## Quantize"))
        self.assertLess(summary.index("## Quantize"), summary.index("## Figures"))
        self.assertIn("weight_noise.png", files)

    def test_families_only_the_run_lists_are_rendered(self):
        # A run whose results.json lists two families: no section for the two others.
        doc = new_format(synthetic_results(families=("WeightNoise", "TempSweep")),
                         families=[f for f in FAMILIES if f["name"] in ("WeightNoise", "TempSweep")])
        summary, files = self.report(doc, benchmark=synthetic_benchmark_json(["WeightNoise/scale:0.01"]))
        for heading in ("## Experiment 1", "## Which T* predictor", "## Experiment 4", "## Timings"):
            self.assertIn(heading, summary)
        for heading in ("## Experiment 2", "## Experiment 3"):
            self.assertNotIn(heading, summary)
        self.assertEqual(files, sorted(("weight_noise.png", "predictor_error.png", "pair_prediction.png",
                                        "temperature.png", "summary.md")))
        self.assertNotIn("skipped", summary)

    def test_listed_family_without_results_says_so(self):
        doc = new_format(synthetic_results(families=("WeightNoise",)))
        summary, files = self.report(doc)
        for family in ("Layer", "Evolution", "TempSweep"):
            self.assertIn(f"No {family} results in this run", summary)
        self.assertIn("layer_heatmap.png: skipped (no Layer results in this run)", summary)
        self.assertEqual(files, sorted(("weight_noise.png", "predictor_error.png", "pair_prediction.png",
                                        "summary.md")))

    def test_bad_families_and_instances_exit_2(self):
        doc = new_format(synthetic_results(families=("WeightNoise",)))
        cases = {}
        bad = json.loads(json.dumps(doc))
        bad["families"] = {"WeightNoise": "weight_noise"}
        cases["not-a-list"] = (bad, ("results.json", "'families' is not a list"))
        bad = json.loads(json.dumps(doc))
        bad["families"][0] = {"name": "WeightNoise"}
        cases["no-section"] = (bad, ("families[0]", "'section'"))
        bad = json.loads(json.dumps(doc))
        bad["families"].append(dict(bad["families"][0]))
        cases["twice"] = (bad, ("'WeightNoise' is listed twice",))
        bad = json.loads(json.dumps(doc))
        bad["results"]["WeightNoise/scale:0.01"]["family"] = "Nope"
        cases["unlisted-family"] = (bad, ("WeightNoise/scale:0.01", "'Nope'", "families"))
        bad = json.loads(json.dumps(doc))
        del bad["results"]["WeightNoise/scale:0.01"]["family"]
        cases["no-family"] = (bad, ("WeightNoise/scale:0.01", "family"))
        bad = json.loads(json.dumps(doc))
        bad["results"]["WeightNoise/scale:0.01"]["instance"] = [0.01]
        cases["instance-not-object"] = (bad, ("WeightNoise/scale:0.01", "instance is not an object"))
        bad = json.loads(json.dumps(doc))
        bad["results"]["WeightNoise/scale:0.01"]["instance"] = {"scale": "0.01"}
        cases["scale-not-number"] = (bad, ("WeightNoise/scale:0.01", "no number 'scale'", "weight_noise"))
        bad = new_format(synthetic_results(families=("Layer",)))
        del bad["results"]["Layer/mlp/scale:0.01"]["instance"]["group"]
        cases["no-group"] = (bad, ("Layer/mlp/scale:0.01", "no string 'group'"))
        bad = new_format(synthetic_results(families=("Evolution",)))
        bad["results"]["Evolution/prompt:1/scale:0.01"]["instance"]["prompt"] = True
        cases["prompt-bool"] = (bad, ("Evolution/prompt:1/scale:0.01", "no number 'prompt'"))
        for name, (bad, words) in cases.items():
            with self.subTest(name):
                self.assert_error(run_report(self.make_run(bad, name=name)), *words)


class LegacyAdapterTest(FormatTestCase):
    def test_adapt_derives_family_and_instance_from_the_name(self):
        adapted = legacy.adapt("results.json", baseline_doc())
        self.assertEqual([f["section"] for f in adapted["families"]],
                         ["weight_noise", "layer", "evolution", "temp_sweep"])
        results = adapted["results"]
        self.assertEqual((results["Layer/layer:3/scale:0.02"]["family"], results["Layer/layer:3/scale:0.02"]["instance"]),
                         ("Layer", {"group": "layer:3", "scale": 0.02}))
        self.assertEqual(results["Evolution/prompt:2/scale:0.02"]["instance"], {"prompt": 2, "scale": 0.02})
        self.assertEqual(results["WeightNoise/scale:0"]["instance"], {"scale": 0.0})
        self.assertEqual(adapted["results"].keys(), baseline_doc()["results"].keys())
        # The same as bench writes now (the test's own conversion).
        current = new_format(baseline_doc())["results"]
        for name, value in results.items():
            self.assertEqual((value["family"], value["instance"]), (current[name]["family"], current[name]["instance"]),
                             name)

    def test_a_scale_counter_overrides_the_name_and_a_missing_scale_is_an_error(self):
        doc = synthetic_results(families=("WeightNoise",))
        adapted = legacy.adapt("r.json", doc)
        self.assertEqual(adapted["results"]["WeightNoise/scale:0.01"]["instance"], {"scale": 0.01})
        entry = doc["results"].pop("WeightNoise/scale:0.01")
        del entry["counters"]["scale"]
        doc["results"]["WeightNoise/noscale"] = entry
        self.assert_error(run_report(self.make_run(doc)), "WeightNoise/noscale", "has no scale")

    def test_only_load_uses_the_legacy_adapter(self):
        users = []
        for path in glob.glob(os.path.join(PACKAGE, "**", "*.py"), recursive=True) + [os.path.join(CI_DIR, "report")]:
            with open(path, encoding="utf-8") as f:
                tree = ast.parse(f.read())
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and any(a.name == "legacy" for a in node.names) \
                        or isinstance(node, ast.ImportFrom) and (node.module or "").endswith("legacy"):
                    users.append(os.path.relpath(path, CI_DIR))
        self.assertEqual(users, [os.path.join("tstar_report", "load.py")])


class SectionModulesTest(unittest.TestCase):
    def test_each_family_section_has_a_module_with_the_interface(self):
        for family in FAMILIES:
            module = sections.find(family["section"])
            self.assertEqual(module.__name__, f"tstar_report.sections.{family['section']}")
        for module in sections.modules():
            with self.subTest(module.__name__):
                self.assertIsInstance(module.INSTANCE, dict)
                self.assertTrue(all(kind in ("number", "string") for kind in module.INSTANCE.values()))
                self.assertIsInstance(module.FIGURES, tuple)
                for name in ("title", "sort_key", "check", "summary"):
                    self.assertTrue(callable(getattr(module, name)), name)
                for figure in module.FIGURES:
                    self.assertTrue(callable(figure.draw) and figure.file.endswith(".png"))

    def test_unknown_or_odd_names_find_the_generic_module(self):
        for name in ("quantization", "", "../load", "Weight_Noise", None, 3):
            self.assertEqual(sections.find(name).__name__, "tstar_report.sections.generic", name)

    def test_figure_files_are_unique_and_are_the_reports(self):
        files = sections.figure_files()
        self.assertEqual(len(files), len(set(files)))
        self.assertEqual(sorted(files), sorted(FIGURES))
        help_text = run_report("--help").stdout
        for name in FIGURES:
            self.assertIn(name, " ".join(help_text.split()))


if __name__ == "__main__":
    unittest.main()
