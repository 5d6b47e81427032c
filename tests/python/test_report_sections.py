"""Each report section (ci/tstar_report/sections/<section>.py) on its own family in the current
results.json format: its summary part and each of its figures.

Run: cd tests/python && TSTAR_SOURCE_DIR=$PWD/../.. /usr/bin/python3 -m unittest -v test_report_sections
"""

import os
import unittest

from new_format import FAMILIES, new_format
from test_report import (GROUPS, PROMPTS, ReportTestCase, leading_number, run_report, section, synthetic_results,
                         table_rows)


class SectionTestCase(ReportTestCase):
    FAMILY = None        # the family of results.json this section renders
    FIGURES = ()         # the files it draws

    def report(self, doc=None, name="run"):
        """(summary.md, output directory) of the report on a run holding only FAMILY."""
        return self.report_on(self.doc() if doc is None else doc, "--cpu-spread", "none", name=name)

    def doc(self):
        return new_format(synthetic_results(families=(self.FAMILY,)),
                          families=[f for f in FAMILIES if f["name"] == self.FAMILY])

    def assert_figure(self, name):
        summary, out_dir = self.report(name=name.replace(".png", ""))
        self.assertEqual(sorted(os.listdir(out_dir)), sorted(self.FIGURES + ("summary.md",)))
        self.assert_images_readable([os.path.join(out_dir, name)])
        self.assertIn(f"- [{name}]({name})", section(summary, "## Figures"))
        return summary


class WeightNoiseSectionTest(SectionTestCase):
    FAMILY = "WeightNoise"
    FIGURES = ("weight_noise.png", "predictor_error.png", "pair_prediction.png")

    def test_summary(self):
        doc = self.doc()
        summary, _ = self.report(doc)
        rows = {row[0]: row for row in table_rows(section(summary, "## Experiment 1"))}
        self.assertEqual(set(rows), {"0", "0.002", "0.01", "0.02", "0.05"})
        for value in doc["results"].values():
            row = rows[f"{value['instance']['scale']:g}"]
            self.assertAlmostEqual(leading_number(row[1]), value["counters"]["alpha"],
                                   delta=1e-3 * value["counters"]["alpha"])
        self.assertIn("3 of 4 scales resolved", section(summary, "## Which T* predictor"))
        self.assertNotIn("## Experiment 2", summary)

    def test_weight_noise_figure(self):
        self.assertIn("![Experiment 1](weight_noise.png)", self.assert_figure("weight_noise.png"))

    def test_predictor_error_figure(self):
        self.assertIn("![Predictor error](predictor_error.png)", self.assert_figure("predictor_error.png"))

    def test_pair_prediction_figure(self):
        summary = self.assert_figure("pair_prediction.png")
        self.assertIn("![Per-pair predictions](pair_prediction.png)", section(summary, "## Which T* predictor"))


class LayerSectionTest(SectionTestCase):
    FAMILY = "Layer"
    FIGURES = ("layer_sensitivity.png", "layer_heatmap.png")

    def test_summary(self):
        doc = self.doc()
        summary, _ = self.report(doc)
        rows = table_rows(section(summary, "## Experiment 2"))
        self.assertEqual(len(rows), 2 * len(GROUPS))
        at_scale = {v["instance"]["group"]: v["counters"]["alpha"] for v in doc["results"].values()
                    if v["instance"]["scale"] == 0.01}
        self.assertEqual([row[1] for row in rows[:len(GROUPS)]], sorted(at_scale, key=lambda g: -at_scale[g]))
        self.assertEqual([row[0] for row in rows[:len(GROUPS)]], [str(i) for i in range(1, len(GROUPS) + 1)])

    def test_layer_sensitivity_figure(self):
        self.assertIn("![Layer sensitivity](layer_sensitivity.png)", self.assert_figure("layer_sensitivity.png"))

    def test_layer_heatmap_figure(self):
        self.assertIn("![Layer heatmap](layer_heatmap.png)", self.assert_figure("layer_heatmap.png"))


class EvolutionSectionTest(SectionTestCase):
    FAMILY = "Evolution"
    FIGURES = ("evolution.png",)
    LABELS = ("increase", "no trend resolved", "too few steps")

    def labelled(self):
        """The run with bench's trend labels: prompt p gets LABELS[p] (a label the slope alone would not
        give: every slope here is far below the notebook's threshold), except prompt 1 at scale 0.02,
        which has none; prompt 0 at scale 0.02 gets a slope above the notebook's threshold."""
        doc = self.doc()
        for name, value in doc["results"].items():
            value["details"]["trend"]["label"] = self.LABELS[value["instance"]["prompt"]]
        del doc["results"]["Evolution/prompt:1/scale:0.02"]["details"]["trend"]["label"]
        doc["results"]["Evolution/prompt:0/scale:0.02"]["counters"]["slope"] = 0.002
        return doc

    def test_trend_is_benchs_label_and_the_notebooks_rule_a_named_column(self):
        doc = self.labelled()
        summary, _ = self.report(doc)
        text = section(summary, "## Experiment 3")
        header = next(line for line in text.splitlines() if line.startswith("| scale | prompt |"))
        self.assertIn("| trend | notebook's rule (\\|slope\\| ≤ 0.001 is stable) |", header)
        rows = table_rows(text)
        self.assertEqual(len(rows), 2 * len(PROMPTS))
        trends = [(row[0], row[6], row[7]) for row in rows]   # entries in (scale, prompt) order
        expected = []
        for value in sorted(doc["results"].values(), key=lambda v: (v["instance"]["scale"], v["instance"]["prompt"])):
            label = value["details"]["trend"].get("label", "not recorded")
            rule = "increase" if value["counters"]["slope"] > 1e-3 else "stable"
            expected.append((f"{value['instance']['scale']:g}", label, rule))
        self.assertEqual(trends, expected)
        self.assertIn("not recorded", [trend for _, trend, _ in trends])
        # The prompt-averaged curve: the notebook's rule, named as such.
        self.assertIn("the prompt-averaged α(t) has slope", text)
        self.assertIn("→ stable by the notebook's rule", text)
        self.assertNotIn("the notebook's rule: |slope|", text)   # the old, unnamed wording

    def test_evolution_figure(self):
        self.assertIn("![Evolution](evolution.png)", self.assert_figure("evolution.png"))

    def test_evolution_figure_with_labels_bench_wrote(self):
        summary, out_dir = self.report(self.labelled(), name="labelled")
        self.assert_images_readable([os.path.join(out_dir, "evolution.png")])


class TempSweepSectionTest(SectionTestCase):
    FAMILY = "TempSweep"
    FIGURES = ("temperature.png",)

    def test_summary(self):
        doc = self.doc()
        summary, _ = self.report(doc)
        rows = {row[0]: row for row in table_rows(section(summary, "## Experiment 4"))}
        self.assertEqual(len(rows), len(doc["results"]))
        for value in doc["results"].values():
            self.assertAlmostEqual(float(rows[f"{value['instance']['scale']:g}"][1]), value["counters"]["best_T"],
                                   places=4)

    def test_temperature_figure(self):
        self.assertIn("![Temperature sweep](temperature.png)", self.assert_figure("temperature.png"))

    def test_curves_of_different_lengths_exit_2(self):
        doc = self.doc()
        doc["results"]["TempSweep/scale:0.01"]["details"]["kl"].pop()
        self.assert_error(run_report(self.make_run(doc)), "TempSweep/scale:0.01", "differ in length")


if __name__ == "__main__":
    unittest.main()
