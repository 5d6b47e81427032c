"""Tests of ci/report: figures and summary of one bench run.

With TSTAR_BENCH_PATH set, one small real `bench` run (about 10 s) is reported on; always, a
synthetic results.json with bench's schema (built here) is, plus the error paths.
"""

import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

SOURCE_DIR = os.environ.get("TSTAR_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")
REPORT = os.path.join(SOURCE_DIR, "ci", "report")
FIGURES = ("weight_noise.png", "layer_sensitivity.png", "evolution.png", "temperature.png",
           "layer_heatmap.png", "predictor_error.png", "pair_prediction.png")
WEIGHT_NOISE_FIGURES = ("weight_noise.png", "predictor_error.png", "pair_prediction.png")
SECTIONS = ("## Provenance", "## Experiment 1", "## Which T* predictor", "## Experiment 2",
            "## Experiment 3", "## Experiment 4", "## Figures", "## Timings")
DEBIAN_PYTHON = "/usr/bin/python3"

# Decodes PNGs with matplotlib and prints, per file: height, width, distinct RGB colours, pixel
# std, and the fraction of clearly coloured (non-grey) pixels: data drawn, not just axes and text.
IMAGE_STATS = r"""
import json, sys
import matplotlib.image, numpy as np
out = {}
for path in sys.argv[1:]:
    image = matplotlib.image.imread(path)
    rgb = (image[..., :3] * 255).round().astype(np.uint8).reshape(-1, 3)
    chroma = rgb.max(axis=1).astype(int) - rgb.min(axis=1)
    packed = (rgb[:, 0].astype(np.int32) << 16) | (rgb[:, 1].astype(np.int32) << 8) | rgb[:, 2]
    out[path] = [image.shape[0], image.shape[1], len(np.unique(packed)),
                 float(image[..., :3].std()), float((chroma > 30).mean())]
print(json.dumps(out))
"""


def python_with_matplotlib():
    """An interpreter that imports matplotlib: this one, else Debian's (where ci/report runs too)."""
    if importlib.util.find_spec("matplotlib"):
        return sys.executable
    if os.access(DEBIAN_PYTHON, os.X_OK):
        probe = subprocess.run([DEBIAN_PYTHON, "-c", "import matplotlib"], capture_output=True)
        if probe.returncode == 0:
            return DEBIAN_PYTHON
    return None


def run_report(*args):
    return subprocess.run([REPORT, *args], capture_output=True, text=True, timeout=300)


# ---------------------------------------------------------------------------------------------
# A synthetic results.json in bench's schema (names, counters, details as bench writes them).

PREDICTORS = (("sqrt_1p_alpha", "sqrt(1+alpha)"), ("1p_alpha", "1+alpha"),
              ("1p_sigma2_over_var_p", "1+sigma^2/Var_p(z)"),
              ("1p_sigma2_1m_sum_p2_over_var_p", "1+sigma^2(1-sum p^2)/Var_p(z)"),
              ("third_order_iid", "1+sigma^2(1-sum p^2-sum p^2(z-E_p z))/Var_p(z)"),
              ("realized_newton", "1+(E_q y-E_p y)/Var_q(y), q=softmax(noisy)"))
# The predictors and counters runs made before the pooled predictors (and fp32 logits) lack.
NEW_PREDICTORS = ("third_order_iid", "realized_newton")
NEW_COUNTERS = ("best_T_resolution", "alpha_model_logits", "kl_reduction")
NEW_DETAILS = ("best_T_resolution", "pair_best_T")
GROUPS = ("all", "attention", "mlp", "lm_head", "early", "middle", "late",
          "layer:0", "layer:1", "layer:2", "layer:3")
PROMPTS = ("Count from 1 to 10: 1, 2,", "The capital of France is", "def fibonacci(n):\n    if n <= 1:")
NEWTON_SEARCH = {"lo": 0.5, "hi": 3.0,
                 "method": "root of the mean KL's slope in 1/T (safeguarded Newton); T = 1 kept when no worse"}
# The floor bf16 logit rounding puts under alpha in these runs: alpha_model_logits = alpha + floor.
WEIGHT_NOISE_FLOOR = 1e-5
LAYER_FLOOR = 4e-5


def temperature_counters(alpha, best_T, pairs, resolution=1e-12):
    """The counters and details bench's temperature report writes, for a given alpha and best T and
    `pairs` (seed, prompt) pairs whose own optima scatter around best T."""
    predicted = {"sqrt_1p_alpha": math.sqrt(1 + alpha), "1p_alpha": 1 + alpha,
                 "1p_sigma2_over_var_p": 1 + 9 * alpha, "1p_sigma2_1m_sum_p2_over_var_p": 1 + 3 * alpha,
                 "third_order_iid": 1 + 2 * alpha, "realized_newton": best_T + 0.1 * alpha}
    pair_best_T = [best_T + 20 * alpha * (k - (pairs - 1) / 2) / pairs for k in range(pairs)]
    counters = {"alpha": alpha, "best_T": best_T, "best_T_at_boundary": 0.0, "best_T_resolution": resolution,
                "kl_T1": 0.5 * alpha, "kl_best": 0.3 * alpha, "kl_reduction": 0.4, "p_correct_T1": 0.84 + alpha,
                "p_correct_best": 0.83 + alpha}
    details = {"best_T_resolution": resolution, "pair_best_T": pair_best_T, "predictors": []}
    for key, formula in PREDICTORS:
        value = predicted[key]
        if key == "realized_newton":  # follows each pair's own optimum
            pair_values = [T + 0.1 * alpha for T in pair_best_T]
        else:
            pair_values = [value * (1 + 1e-3 * alpha * k) for k in range(pairs)]
        errors = [v - T for v, T in zip(pair_values, pair_best_T)]
        bias, rms = sum(errors) / pairs, math.sqrt(sum(e * e for e in errors) / pairs)
        counters.update({f"T_{key}": value, f"err_{key}": value - best_T, f"pair_bias_{key}": bias,
                         f"pair_rms_{key}": rms})
        details["predictors"].append({"key": key, "formula": formula, "value": value, "error": value - best_T,
                                      "pooling": "ratio of sums over pairs", "pair_values": pair_values,
                                      "pair_bias": bias, "pair_rms_error": rms})
    return counters, details


def weight_noise_entries(scale):
    alpha = 1.3 * scale ** 2 + 0.4 * scale ** 3
    best_T = 1 + 100 * alpha  # |best T - 1| > best_T_ci95 (0.5 scale) from scale 0.0039 on: 0.002 is not resolved
    counters, details = temperature_counters(alpha, best_T, pairs=8)
    counters.update({"alpha_ci95": 0.2 * alpha, "best_T_ci95": 0.5 * scale, "alpha_prompt_std": 0.1 * alpha,
                     "grid_best_T": round(best_T / 0.02) * 0.02, "top1_match": 1 - scale, "changed_fraction": 0.9,
                     "realized_ratio": 1.0, "scale": scale,
                     "alpha_model_logits": alpha + WEIGHT_NOISE_FLOOR if scale > 0 else 0.0})
    details.update({"seed_alpha": [0.9 * alpha, 1.1 * alpha], "seed_best_T": [best_T - 0.01, best_T + 0.01],
                    "prompt_alpha": [alpha] * 4,
                    "alpha_ci95": {"method": "Student t over seeds", "lo": 0.8 * alpha, "hi": 1.2 * alpha},
                    "best_T_ci95": {"method": "Student t over seeds", "lo": best_T - 0.5 * scale,
                                    "hi": best_T + 0.5 * scale}})
    grid = [0.8 + 0.02 * i for i in range(35)]
    sweep_counters, sweep_details = temperature_counters(alpha, best_T, pairs=8)
    sweep_counters.update({"grid_best_T": counters["grid_best_T"], "scale": scale})
    sweep_details.update({"grid": grid, "kl": [(T - best_T) ** 2 + alpha for T in grid],
                          "p_correct": [0.9 - 0.2 * (T - 0.8) for T in grid], "grid_best_at_boundary": False})
    name = f"scale:{scale:g}"
    return {f"WeightNoise/{name}": {"counters": counters, "details": details},
            f"TempSweep/{name}": {"counters": sweep_counters, "details": sweep_details}}


def layer_entry(group, index, scale):
    alpha = scale ** 2 * {"all": 2.0, "lm_head": 1.8}.get(group, 0.05 + 0.1 * index)
    # "middle": an optimum the search cannot tell from 1 (within its resolution).
    best_T, resolution = (1 + 5e-7, 1e-6) if group == "middle" else (1 + 3 * alpha, 1e-12)
    counters, details = temperature_counters(alpha, best_T, pairs=2, resolution=resolution)
    counters.update({"alpha_ci95": 0.1 * alpha, "top1_match": 1.0, "tensors": 7.0, "params": 196608.0,
                     "changed_fraction": 0.9, "realized_ratio": 1.0, "scale": scale,
                     "alpha_model_logits": alpha + LAYER_FLOOR})
    details.update({"seed_alpha": [alpha, alpha], "tensors": ["model.layers.0.mlp.up_proj.weight"]})
    return {"counters": counters, "details": details}


def old_style(entry):
    """An entry as runs before the pooled predictors, exact best T and fp32 logits wrote it."""
    counters = {name: value for name, value in entry["counters"].items()
                if name not in NEW_COUNTERS and not name.startswith(("pair_bias_", "pair_rms_"))
                and not name.endswith(NEW_PREDICTORS)}
    details = {name: value for name, value in entry["details"].items() if name not in NEW_DETAILS}
    if "predictors" in details:
        details["predictors"] = [{k: p[k] for k in ("key", "formula", "value", "error")}
                                 for p in details["predictors"] if p["key"] not in NEW_PREDICTORS]
    return {"counters": counters, "details": details}


def evolution_entry(prompt, scale):
    alpha_t = [scale ** 2 * (1 + 0.1 * ((t * (prompt + 3)) % 7)) for t in range(15)]
    slope = (alpha_t[-1] - alpha_t[0]) / 14
    counters = {"T_max": 1.01, "alpha_first": alpha_t[0], "alpha_last": alpha_t[-1],
                "alpha_mean": sum(alpha_t) / 15, "beta": 0.0, "scale": scale, "schedule_rms": 0.01,
                "slope": slope, "trend": 0.0}
    details = {"alpha_t": alpha_t, "best_T_t": [1.0] * 15, "prompt": PROMPTS[prompt],
               "sqrt_1p_alpha_t": [math.sqrt(1 + a) for a in alpha_t], "text": " 3, 4", "tokens": [220] * 15,
               "trend": {"slope": slope, "intercept": alpha_t[0], "label": "stable"},
               "schedule": {"T_max": 1.01, "beta": 0.0, "at_boundary": True, "rms_error": 0.01,
                            "formula": "T(t) = T_max / sqrt(1 + beta t), least squares on best_T_t"}}
    return {"counters": counters, "details": details}


def synthetic_results(scales=(0.0, 0.002, 0.01, 0.05), detail_scales=(0.01, 0.02), families=None, old=False):
    """A results.json; `old`: as runs before the pooled predictors, exact best T and fp32 logits."""
    results = {}
    for scale in sorted(set(scales) | set(detail_scales)):
        results.update(weight_noise_entries(scale))
    for scale in detail_scales:
        for index, group in enumerate(GROUPS):
            results[f"Layer/{group}/scale:{scale:g}"] = layer_entry(group, index, scale)
        for prompt in range(len(PROMPTS)):
            results[f"Evolution/prompt:{prompt}/scale:{scale:g}"] = evolution_entry(prompt, scale)
    if families is not None:
        results = {name: value for name, value in results.items() if name.split("/")[0] in families}
    if old:
        results = {name: old_style(value) if "counters" in value and not name.startswith("Evolution/") else value
                   for name, value in results.items()}
    provenance = {"model": {"architecture": "Qwen2ForCausalLM", "dtype": "bf16", "device": "cpu",
                            "model": "synthetic-model", "parameters": 1017984},
                  "seeds": [0, 1], "scales": list(scales), "detail_scales": list(detail_scales),
                  "threads": 1, "tstar_commit": "abc123def456", "noise": "gaussian",
                  "reference": "tensor_std", "blas_libraries": ["libopenblas.so.0"]}
    settings = {"seeds": [0, 1], "reference": "tensor_std", "layer_prompt": 0, "dtype": "bf16"}
    if old:
        settings["temperature_search"] = {"lo": 0.5, "hi": 3.0, "method": "Brent", "tol": 1e-4}
    else:
        settings.update({"logits_dtype": "fp32", "temperature_search": NEWTON_SEARCH, "exclusion": "notebook",
                         "depth_groups": "notebook",
                         "predictor_pooling": "ratio of sums over (seed, prompt) pairs, as the mean KL pools them"})
    return {"provenance": provenance, "settings": settings, "results": results,
            "weights_digest_before": "ab", "weights_digest_after": "ab"}


def synthetic_benchmark_json(names):
    rows = []
    for name in names:
        for repetition, time_ms in enumerate((8.0, 9.0, 10.0)):
            rows.append({"name": f"{name}/real_time", "run_name": f"{name}/real_time", "run_type": "iteration",
                         "repetitions": 3, "repetition_index": repetition, "threads": 1, "iterations": 2,
                         "real_time": time_ms, "cpu_time": time_ms, "time_unit": "ms", "alpha": 0.001})
    return {"context": {"date": "2026-11-28T00:00:00+00:00", "host_name": "testhost"}, "benchmarks": rows}


def write_json(path, doc):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f)


# ---------------------------------------------------------------------------------------------
# Reading the summary back

def section(summary, heading):
    """The text of the '## heading...' section up to the next '## '."""
    start = summary.index(heading)
    end = summary.find("\n## ", start + 1)
    return summary[start:end if end >= 0 else len(summary)]


def table_rows(text):
    """Data rows (not headers) of the Markdown tables in `text`, as lists of cell strings."""
    lines = text.splitlines()
    rows = []
    for line, following in zip(lines, lines[1:] + [""]):
        if line.startswith("| ") and not following.startswith("|---"):
            rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
    return rows


def leading_number(cell):
    return float(cell.split("±")[0].split("(")[0].strip())


def resolved_best_T(counters):
    """Whether the run can tell best T from 1: |best T − 1| > max(CI95, resolution) of those present
    (True when neither is)."""
    bounds = [counters[k] for k in ("best_T_ci95", "best_T_resolution") if k in counters]
    return not bounds or abs(counters["best_T"] - 1) > max(bounds)


def closest(counters, keys):
    return min(keys, key=lambda key: abs(counters[f"err_{key}"]))


class ReportTestCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.python = python_with_matplotlib()
        if cls.python is None:
            raise unittest.SkipTest("no python3 with matplotlib (Debian: python3-matplotlib)")

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="tstar-report-test-")
        self.addCleanup(self.tmp.cleanup)

    def make_run(self, doc, benchmark=None, name="run"):
        run_dir = os.path.join(self.tmp.name, name)
        os.makedirs(run_dir)
        if doc is not None:
            write_json(os.path.join(run_dir, "results.json"), doc)
        if benchmark is not None:
            write_json(os.path.join(run_dir, "benchmark.json"), benchmark)
        return run_dir

    def report_on(self, doc, *options, name="run", benchmark=None):
        """(summary.md, output directory) of a successful report (with `options`) on a run of `doc`."""
        run_dir = self.make_run(doc, benchmark, name=name)
        out_dir = os.path.join(self.tmp.name, name + "-out")
        result = run_report(run_dir, "--out", out_dir, *options)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stderr, "")
        with open(os.path.join(out_dir, "summary.md"), encoding="utf-8") as f:
            return f.read(), out_dir

    def assert_images_readable(self, paths):
        probe = subprocess.run([self.python, "-c", IMAGE_STATS, *paths], capture_output=True, text=True,
                               timeout=120)
        self.assertEqual(probe.returncode, 0, probe.stderr)
        for path, (height, width, colours, std, coloured) in json.loads(probe.stdout).items():
            name = os.path.basename(path)
            self.assertTrue(600 <= width <= 5000 and 400 <= height <= 5000, f"{name}: {width}x{height}")
            self.assertGreater(colours, 100, f"{name}: only {colours} distinct colours")
            self.assertGreater(std, 0.05, f"{name}: nearly flat image (pixel std {std})")
            self.assertGreater(coloured, 0.002, f"{name}: no coloured data drawn")

    def assert_error(self, result, *words):
        self.assertEqual(result.returncode, 2, result.stderr)
        lines = result.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, result.stderr)
        self.assertNotIn("Traceback", result.stderr)
        for word in words:
            self.assertIn(word, lines[0])

    def check_full_report(self, run_dir, out_dir):
        """Every figure readable and the summary's numbers equal to results.json's."""
        result = run_report(run_dir, "--out", out_dir)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stderr, "")
        paths = [os.path.join(out_dir, name) for name in FIGURES]
        for path in paths:
            self.assertTrue(os.path.isfile(path), f"{path} missing")
        self.assert_images_readable(paths)
        with open(os.path.join(out_dir, "summary.md"), encoding="utf-8") as f:
            summary = f.read()
        for heading in SECTIONS:
            self.assertIn(heading, summary)
        for name in FIGURES:
            self.assertIn(f"]({name})", summary)
        with open(os.path.join(run_dir, "results.json"), encoding="utf-8") as f:
            results = json.load(f)["results"]
        self.check_weight_noise_table(summary, results)
        self.check_predictor_ranking(summary, results)
        self.check_layer_ranking(summary, results)
        return summary

    def check_weight_noise_table(self, summary, results):
        rows = {row[0]: row for row in table_rows(section(summary, "## Experiment 1"))}
        entries = {k: v["counters"] for k, v in results.items() if k.startswith("WeightNoise/")}
        self.assertEqual(len(rows), len(entries))
        for counters in entries.values():
            row = rows[f"{counters['scale']:g}"]
            self.assertAlmostEqual(leading_number(row[1]), counters["alpha"], delta=1e-3 * counters["alpha"])
            self.assertAlmostEqual(leading_number(row[3]), counters["best_T"], places=4)
            if counters["scale"] > 0:
                self.assertAlmostEqual(float(row[2]), counters["alpha"] / counters["scale"] ** 2,
                                       delta=1e-3 * counters["alpha"] / counters["scale"] ** 2)

    def check_predictor_ranking(self, summary, results):
        """The first-ranked predictor and its mean |err| over the scales where best T is resolved."""
        entries = [v["counters"] for k, v in results.items() if k.startswith("WeightNoise/")]
        scaled = [c for c in entries if c["scale"] > 0]
        resolved = [c for c in scaled if resolved_best_T(c)]
        text = section(summary, "## Which T* predictor")
        if not resolved:
            self.assertIn("not resolved at any scale: no ranking", text)
            self.assertNotIn("| rank |", text)
            return
        self.assertIn(f"{len(resolved)} of {len(scaled)} scales resolved; predictors ranked on those only", text)
        keys = [name[4:] for name in entries[0] if name.startswith("err_")]
        mean_abs = {key: sum(abs(c[f"err_{key}"]) for c in resolved) / len(resolved) for key in keys}
        best = min(mean_abs, key=mean_abs.get)
        formulas = {p["key"]: p["formula"] for p in results[next(iter(
            k for k in results if k.startswith("WeightNoise/")))]["details"]["predictors"]}
        first = table_rows(text)[0]
        self.assertEqual(first[0], "1")
        self.assertEqual(first[1].strip("`"), formulas[best])
        self.assertAlmostEqual(float(first[2]), mean_abs[best], delta=2e-3 * mean_abs[best] + 1e-12)
        self.assertEqual(first[5], f"{sum(1 for c in resolved if closest(c, keys) == best)} of {len(resolved)}")

    def check_layer_ranking(self, summary, results):
        layers = {k: v["counters"] for k, v in results.items() if k.startswith("Layer/")}
        scale = min(c["scale"] for c in layers.values())
        at_scale = {k.split("/")[1]: c["alpha"] for k, c in layers.items() if c["scale"] == scale}
        rows = table_rows(section(summary, "## Experiment 2"))
        self.assertEqual(rows[0][0], "1")
        self.assertEqual(rows[0][1], max(at_scale, key=at_scale.get))
        self.assertAlmostEqual(leading_number(rows[0][2]), max(at_scale.values()),
                               delta=1e-3 * max(at_scale.values()))


class SyntheticRunTest(ReportTestCase):
    def test_full_synthetic_run(self):
        doc = synthetic_results()
        run_dir = self.make_run(doc, synthetic_benchmark_json(["WeightNoise/scale:0.01", "Layer/all/scale:0.01"]))
        summary = self.check_full_report(run_dir, os.path.join(self.tmp.name, "out"))
        timings = section(summary, "## Timings")
        self.assertIn("`WeightNoise/scale:0.01/real_time`", timings)
        self.assertIn("9 ms", timings)  # median of 8, 9, 10 ms
        self.assertIn("abc123def456", section(summary, "## Provenance"))
        self.assertNotIn("Skipped", summary)

    def test_one_detail_scale_and_default_output_directory(self):
        run_dir = self.make_run(synthetic_results(detail_scales=(0.02,)))
        result = run_report(run_dir)
        self.assertEqual(result.returncode, 0, result.stderr)
        out_dir = os.path.join(run_dir, "report")
        self.assertEqual(sorted(os.listdir(out_dir)), sorted(FIGURES + ("summary.md",)))
        with open(os.path.join(out_dir, "summary.md"), encoding="utf-8") as f:
            self.assertIn("No benchmark.json", section(f.read(), "## Timings"))

    def test_only_weight_noise(self):
        run_dir = self.make_run(synthetic_results(families=("WeightNoise",)))
        out_dir = os.path.join(self.tmp.name, "out")
        result = run_report(run_dir, "--out", out_dir)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(sorted(os.listdir(out_dir)), sorted(WEIGHT_NOISE_FIGURES + ("summary.md",)))
        self.assert_images_readable([os.path.join(out_dir, name) for name in WEIGHT_NOISE_FIGURES])
        with open(os.path.join(out_dir, "summary.md"), encoding="utf-8") as f:
            summary = f.read()
        for name in set(FIGURES) - set(WEIGHT_NOISE_FIGURES):
            self.assertRegex(summary, rf"{re.escape(name)}: skipped \(no \w+ results")
        for family in ("Layer", "Evolution", "TempSweep"):
            self.assertIn(f"No {family} results in this run", summary)

    def test_missing_results_json(self):
        run_dir = self.make_run(None)
        self.assert_error(run_report(run_dir), os.path.join(run_dir, "results.json"))

    def test_missing_run_directory(self):
        self.assert_error(run_report(os.path.join(self.tmp.name, "nowhere")), "nowhere")

    def test_invalid_json(self):
        run_dir = self.make_run(None)
        with open(os.path.join(run_dir, "results.json"), "w", encoding="utf-8") as f:
            f.write("{not json")
        self.assert_error(run_report(run_dir), "results.json", "not valid JSON")

    def test_wrong_shapes(self):
        doc = synthetic_results()
        doc["results"]["WeightNoise/scale:0.01"] = {"details": {}}
        self.assert_error(run_report(self.make_run(doc, name="a")), "results.json", "WeightNoise/scale:0.01")
        doc = synthetic_results()
        doc["results"]["TempSweep/scale:0.01"]["details"]["kl"] = "no"
        self.assert_error(run_report(self.make_run(doc, name="b")), "TempSweep/scale:0.01", "kl")
        self.assert_error(run_report(self.make_run({"results": []}, name="c")), "results.json")

    def test_broken_benchmark_json(self):
        run_dir = self.make_run(synthetic_results(), {"context": {}})
        self.assert_error(run_report(run_dir), "benchmark.json")

    def test_pair_values_must_match_the_pairs(self):
        doc = synthetic_results(families=("WeightNoise",))
        doc["results"]["WeightNoise/scale:0.01"]["details"]["predictors"][2]["pair_values"].pop()
        self.assert_error(run_report(self.make_run(doc, name="a")), "WeightNoise/scale:0.01",
                          "predictors[2].pair_values has 7 values, details.pair_best_T 8")
        doc = synthetic_results(families=("WeightNoise",))
        doc["results"]["WeightNoise/scale:0.05"]["details"]["pair_best_T"] = [1.0, "x"]
        self.assert_error(run_report(self.make_run(doc, name="b")), "WeightNoise/scale:0.05", "pair_best_T")


class StatisticsTest(ReportTestCase):
    """What the pooled predictors, the exactly searched best T and the fp32 logits add to the summary:
    unresolved best T, the ranking over resolved scales only, the per-pair view and its figure, the bf16
    rounding floor; and runs made before them still render."""

    def report(self, doc, name="run"):
        return self.report_on(doc, "--cpu-spread", "none", name=name)

    @staticmethod
    def counters(doc, family):
        return {name: value["counters"] for name, value in doc["results"].items() if name.startswith(family + "/")}

    def test_bootstrap_intervals_of_the_pooled_errors(self):
        doc = synthetic_results(families=("WeightNoise",))
        summary, _ = self.report(doc, name="noboot")
        self.assertNotIn("Pooled error per scale with its 95% interval", summary)
        for name, value in doc["results"].items():
            for p in value["details"].get("predictors", []):
                p["error_ci95"] = [-0.25, 0.5]
            value["details"]["bootstrap"] = {"method": "cluster bootstrap over prompts x seeds (test)"}
        summary, _ = self.report(doc, name="boot")
        self.assertIn("Pooled error per scale with its 95% interval (cluster bootstrap over prompts x seeds (test)",
                      summary)
        self.assertIn("[-0.25, 0.5]", summary)

    def test_not_resolved_is_marked_beside_best_T(self):
        for old in (False, True):
            with self.subTest(old=old):
                doc = synthetic_results(families=("WeightNoise", "Layer"), old=old)
                summary, _ = self.report(doc, name=f"old{old}")
                rows = {row[0]: row for row in table_rows(section(summary, "## Experiment 1"))}
                marked = {scale for scale, row in rows.items() if row[3].endswith("(not resolved)")}
                expected = {f"{c['scale']:g}" for c in self.counters(doc, "WeightNoise").values()
                            if c["scale"] > 0 and not resolved_best_T(c)}
                self.assertEqual(marked, expected)
                self.assertEqual(marked, {"0.002"})   # scale 0 has best T exactly 1: nothing to resolve
                self.assertEqual(rows["0.002"][3], "1.0005 ± 0.001 (not resolved)")
                layer = [row for row in table_rows(section(summary, "## Experiment 2"))]
                # Layer has no CI over seeds: its resolution decides, and older runs have none.
                self.assertEqual({row[1] for row in layer if "(not resolved)" in row[3]},
                                 set() if old else {"middle"})
                self.assertEqual("cannot tell best T from 1" in section(summary, "## Experiment 2"), not old)

    def test_predictors_are_ranked_on_resolved_scales_only(self):
        doc = synthetic_results(families=("WeightNoise",))
        summary, _ = self.report(doc)
        text = section(summary, "## Which T* predictor")
        self.assertIn("3 of 4 scales resolved; predictors ranked on those only (not resolved: scale 0.002", text)
        self.assertIn("pooled as the objective: ratio of sums over (seed, prompt) pairs", text)
        self.assertNotIn("mean of the per-pair predictions", text)
        header = text.splitlines()[[line.startswith("| rank |") for line in text.splitlines()].index(True)]
        self.assertTrue(header.endswith("| closest at | mean pair RMS err | mean pair bias |"), header)
        rows = table_rows(text)
        self.assertEqual(sorted(row[1].strip("`") for row in rows), sorted(formula for _, formula in PREDICTORS))
        resolved = [c for c in self.counters(doc, "WeightNoise").values() if c["scale"] > 0 and resolved_best_T(c)]
        self.assertEqual(len(resolved), 3)
        formulas = dict(PREDICTORS)
        for row in rows:
            key = next(k for k, f in formulas.items() if f == row[1].strip("`"))
            for column, counter in ((2, "err"), (6, "pair_rms"), (7, "pair_bias")):
                values = [c[f"{counter}_{key}"] for c in resolved]
                mean = sum(abs(v) for v in values) / 3 if counter == "err" else sum(values) / 3
                # 3 significant digits: within 5e-3 relative
                self.assertAlmostEqual(float(row[column]), mean, delta=5e-3 * abs(mean), msg=(row, counter))
        self.assertEqual(rows[0][1], "`1+(E_q y-E_p y)/Var_q(y), q=softmax(noisy)`")
        self.check_predictor_ranking(summary, doc["results"])

    def test_no_resolved_scale_means_no_ranking(self):
        doc = synthetic_results(families=("WeightNoise",))
        for value in doc["results"].values():
            value["counters"]["best_T_ci95"] = 1.0
        summary, _ = self.report(doc)
        text = section(summary, "## Which T* predictor")
        self.assertIn("Best T is not resolved at any scale: no ranking.", text)
        self.assertNotIn("| rank |", text)
        self.assertNotIn("is closest (mean |err|", text)
        # The per-pair view stays, unranked, in the run's predictor order.
        rows = table_rows(text)
        self.assertEqual([row[0].strip("`") for row in rows], [formula for _, formula in PREDICTORS])
        self.assertIn("(not a ranking)", text)
        self.assertEqual(sum("(not resolved)" in row[3] for row in table_rows(section(summary, "## Experiment 1"))),
                         4)

    def test_pair_prediction_figure_shows_the_largest_resolved_scale(self):
        doc = synthetic_results(families=("WeightNoise",))
        summary, out_dir = self.report(doc, name="a")
        self.assertIn("Per-pair predictions at scale 0.05 (the largest scale where best T is resolved)", summary)
        self.assert_images_readable([os.path.join(out_dir, "pair_prediction.png")])
        # Scale 0.05 not resolved: the figure falls back to 0.02.
        doc["results"]["WeightNoise/scale:0.05"]["counters"]["best_T_ci95"] = 1.0
        summary, _ = self.report(doc, name="b")
        self.assertIn("Per-pair predictions at scale 0.02 (the largest scale where best T is resolved)", summary)
        # None resolved: the largest scale > 0, and the summary says why.
        for value in doc["results"].values():
            value["counters"]["best_T_ci95"] = 1.0
        summary, out_dir = self.report(doc, name="c")
        self.assertIn("Per-pair predictions at scale 0.05 (best T is not resolved at any scale: the largest "
                      "scale > 0)", summary)
        self.assertIn("](pair_prediction.png)", section(summary, "## Which T* predictor"))
        self.assert_images_readable([os.path.join(out_dir, "pair_prediction.png")])

    def test_rounding_floor_of_the_model_dtype_logits(self):
        doc = synthetic_results(families=("WeightNoise", "Layer"))
        summary, _ = self.report(doc)
        for heading, family, key in (("## Experiment 1", "WeightNoise", lambda row: row[0]),
                                     ("## Experiment 2", "Layer", lambda row: row[1])):
            text = section(summary, heading)
            self.assertIn("| α (fp32 logits) ± 95% CI |", text)
            self.assertIn("| α (bf16 logits) (ratio to α) |", text)
            self.assertIn("the bf16 logits' rounding dominates α", text)
            rows = table_rows(text)
            floored = {key(row) for row in rows if row[-1].endswith("rounding floor)")}
            counters = self.counters(doc, family)
            expected = {(f"{c['scale']:g}" if family == "WeightNoise" else name.split("/")[1])
                        for name, c in counters.items() if c["alpha"] > 0 and c["alpha_model_logits"] / c["alpha"] > 2}
            self.assertEqual(floored, expected)
            self.assertTrue(floored)
            self.assertIn(f"marked \"rounding floor\": {sum(row[-1].endswith('rounding floor)') for row in rows)} "
                          f"of {len(rows)} rows", " ".join(text.split()))
        self.assertEqual(table_rows(section(summary, "## Experiment 1"))[-1][-1], "0.00331 (1×)")

    def test_search_method_and_pooling_are_the_runs(self):
        summary, _ = self.report(synthetic_results(families=("WeightNoise", "TempSweep")), name="new")
        self.assertNotIn("Brent", summary)
        self.assertIn("Search: root of the mean KL's slope in 1/T (safeguarded Newton); T = 1 kept when no worse, "
                      "T in [0.5, 3]; resolution (best_T_resolution) ≤ 1e-12 in T.", summary)
        self.assertIn("| dtype / device | bf16 (logits fp32) / cpu |", summary)
        self.assertIn("| exclusion / depth groups | notebook / notebook |", summary)
        summary, _ = self.report(synthetic_results(families=("WeightNoise", "TempSweep"), old=True), name="old")
        self.assertIn("Search: Brent, tol 0.0001, T in [0.5, 3].", summary)
        self.assertIn("report the mean of the per-pair predictions", summary)
        self.assertNotIn("exclusion / depth groups", summary)

    def test_runs_before_the_new_statistics_still_render(self):
        doc = synthetic_results(old=True)
        summary, out_dir = self.report(doc)
        drawn = [name for name in FIGURES if name != "pair_prediction.png"]
        self.assertEqual(sorted(os.listdir(out_dir)), sorted(drawn + ["summary.md"]))
        self.assert_images_readable([os.path.join(out_dir, name) for name in drawn])
        self.assertIn("pair_prediction.png: skipped (no per-pair predictions", summary)
        self.assertNotIn("(bf16 logits)", summary)    # no α (bf16 logits) column
        self.assertNotIn("fp32", summary)
        self.assertNotIn("rounding floor", summary)
        text = section(summary, "## Which T* predictor")
        self.assertNotIn("mean pair RMS err", text)
        self.assertEqual(len(table_rows(text)), 4)     # the four predictors of those runs
        self.check_weight_noise_table(summary, doc["results"])
        self.check_predictor_ranking(summary, doc["results"])
        self.check_layer_ranking(summary, doc["results"])


def spread_document(measured):
    """A CPU spread file's content (ci/spread, format 2) with the measured
    {family: {counter: (max_rel, max_abs)}}."""
    by_family = {f: {c: {"max_abs": a, "max_rel": r, "worst_benchmark": f"{f}/x", "benchmarks": 3, "differing": 3}
                     for c, (r, a) in entries.items()}
                 for f, entries in measured.items()}
    counters = {}
    for entries in by_family.values():
        for c, e in entries.items():
            counters[c] = dict(e, **{k: max(e[k], counters.get(c, e)[k]) for k in ("max_abs", "max_rel")})
    return {"format": 2, "description": "test", "safety_factor": 2.0,
            "pairs": [{"native": {"run": "n", "cpu_model": "Intel Xeon Test"},
                       "reference": {"run": "r", "cpu_model": "AMD EPYC Test"}, "shared_benchmarks": 3}],
            "by_family": by_family,
            "tolerance": {f: {c: {"rel": 2 * r, "abs": 2 * a} for c, (r, a) in entries.items()}
                          for f, entries in measured.items()},
            "counters": counters, "mismatches": []}


def spread_cell_numbers(cell):
    """'±0 (family max abs 2e-06) / ±0.001 (machine ≈ seed)' -> (0, 0.001)."""
    alpha, best_T = cell.split(" / ")
    return float(alpha.split()[0].lstrip("±")), float(best_T.split()[0].lstrip("±"))


class CpuSpreadTest(ReportTestCase):
    """--cpu-spread: the CPU spread beside alpha and best T, and the rows where it rivals the seeds."""

    # WeightNoise: alpha moves by 4% (half its CI is 10%: never marked); best T by 0.1% (half its CI is
    # 0.25 * scale: marked at scale 0.002 only; scale 0 has no seed CI and is never marked).
    # Layer: alpha moves by 30% (half its CI is 5%: every row with alpha > 0 marked); best T by 1e-5.
    # The largest over the families (30% for alpha) must not reach the WeightNoise rows.
    MEASURED = {"WeightNoise": {"alpha": (0.04, 2e-6), "best_T": (1e-3, 1e-4)},
                "Layer": {"alpha": (0.3, 5e-7), "best_T": (1e-5, 1e-5)}}

    def report(self, doc, *options, name="run"):
        return self.report_on(doc, *options, name=name)[0]

    def spread_file(self, measured=None, name="cpu-spread.json"):
        path = os.path.join(self.tmp.name, name)
        write_json(path, spread_document(measured or self.MEASURED))
        return path

    def assert_spread_cells(self, rows, counters, measured, cell_column=4):
        """Each row's CPU spread cell is max_rel·|v| of its own family's measured spread."""
        for key, row in rows.items():
            alpha, best_T = spread_cell_numbers(row[cell_column])
            c = counters[key]
            for shown, counter in ((alpha, "alpha"), (best_T, "best_T")):
                expected = measured[counter][0] * abs(c[counter])
                self.assertAlmostEqual(shown, expected, delta=0.05 * expected, msg=(key, counter, row))

    def test_spread_column_values_and_marked_rows(self):
        doc = synthetic_results(families=("WeightNoise", "Layer"))
        summary = self.report(doc, "--cpu-spread", self.spread_file())
        weight_noise = section(summary, "## Experiment 1")
        self.assertIn("| CPU spread (alpha / best T) |", weight_noise)
        rows = {row[0]: row for row in table_rows(weight_noise)}
        counters = {f"{v['counters']['scale']:g}": v["counters"] for k, v in doc["results"].items()
                    if k.startswith("WeightNoise/")}
        self.assert_spread_cells(rows, counters, self.MEASURED["WeightNoise"])
        for scale, row in rows.items():
            self.assertEqual("machine ≈ seed" in row[4], scale == "0.002", row)
        # alpha is 0 at scale 0: the relative spread says nothing there, the family's max abs is shown.
        self.assertEqual(rows["0"][4], "±0 (family max abs 2e-06) / ±0.001")
        self.assertEqual(sum("family max abs" in row[4] for row in rows.values()), 1)
        self.assertEqual(sum("(machine ≈ seed)" in line for line in weight_noise.splitlines()), 1)
        self.assertIn("results computed on the native compute profile move by this much between CPUs",
                      weight_noise)
        self.assertIn("measured in the WeightNoise family", " ".join(weight_noise.split()))
        self.assertIn("--compute reference", weight_noise)
        layer = section(summary, "## Experiment 2")
        layer_rows = {(row[1], i): row for i, row in enumerate(table_rows(layer))}
        layer_counters = {}
        for (group, i), row in layer_rows.items():
            scale = "0.01" if i < len(GROUPS) else "0.02"
            layer_counters[(group, i)] = doc["results"][f"Layer/{group}/scale:{scale}"]["counters"]
        self.assertEqual(len(layer_rows), 2 * len(GROUPS))
        self.assert_spread_cells(layer_rows, layer_counters, self.MEASURED["Layer"])
        self.assertTrue(all("machine ≈ seed" in row[4] for row in layer_rows.values()), layer_rows)
        self.assertIn("measured in the Layer family", " ".join(layer.split()))
        provenance = section(summary, "## Provenance")
        self.assertIn("Intel Xeon Test (native) vs AMD EPYC Test (reference)", provenance)
        self.assertIn("(per benchmark family)", provenance)

    def test_the_spread_of_another_family_is_not_used(self):
        # Layer's alpha moves by 30%, WeightNoise's by 1e-6: only the Layer rows are marked.
        doc = synthetic_results(families=("WeightNoise", "Layer"))
        summary = self.report(doc, "--cpu-spread", self.spread_file(
            {"WeightNoise": {"alpha": (1e-6, 0.0), "best_T": (1e-9, 0.0)},
             "Layer": {"alpha": (0.3, 0.0), "best_T": (0.0, 0.0)}}))
        self.assertTrue(all("machine ≈ seed" in row[4] for row in table_rows(section(summary, "## Experiment 2"))
                            if float(row[2].split("±")[1]) > 0))
        self.assertIn("Rows marked", section(summary, "## Experiment 2"))
        weight_noise = section(summary, "## Experiment 1")
        self.assertNotIn("machine ≈ seed", weight_noise)
        self.assertNotIn("Rows marked", weight_noise)

    def test_a_family_the_file_does_not_have_shows_n_a(self):
        doc = synthetic_results(families=("WeightNoise", "Layer"))
        summary = self.report(doc, "--cpu-spread", self.spread_file({"WeightNoise": self.MEASURED["WeightNoise"]}))
        self.assertTrue(all(row[4] == "n/a / n/a" for row in table_rows(section(summary, "## Experiment 2"))))
        self.assertTrue(all(row[4].startswith("±") for row in table_rows(section(summary, "## Experiment 1"))))

    def test_small_spread_marks_nothing(self):
        doc = synthetic_results(families=("WeightNoise",))
        summary = self.report(doc, "--cpu-spread", self.spread_file(
            {"WeightNoise": {"alpha": (1e-6, 0.0), "best_T": (1e-9, 0.0)}}))
        self.assertIn("CPU spread (alpha / best T)", summary)
        self.assertNotIn("machine ≈ seed", summary)
        self.assertNotIn("Rows marked", summary)

    def test_none_disables_the_column(self):
        doc = synthetic_results(families=("WeightNoise",))
        summary = self.report(doc, "--cpu-spread", "none")
        self.assertNotIn("CPU spread (", summary)
        self.assertIn("| CPU spread | not used |", summary)

    def test_default_is_the_committed_spread_file(self):
        committed = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.realpath(__file__)))), "results", "baseline", "cpu-spread.json")
        summary = self.report(synthetic_results(families=("WeightNoise",)), name="default")
        if os.path.exists(committed):
            self.assertIn("CPU spread (alpha / best T)", summary)
            self.assertIn(committed, summary)
        else:
            self.assertIn("| CPU spread | not used |", summary)

    def test_reference_profile_is_bit_identical_and_the_column_is_labelled(self):
        doc = synthetic_results(families=("WeightNoise",))
        doc["provenance"]["compute_profile"] = "reference"
        doc["provenance"]["cpu_model"] = "AMD EPYC 9R14"
        summary = self.report(doc, "--cpu-spread", self.spread_file())
        provenance = section(summary, "## Provenance")
        self.assertIn("| compute profile | reference: statistics are bit-identical on any x86-64-v3 CPU; "
                      "the CPU spread columns apply to native runs only |", provenance)
        self.assertIn("| CPU | AMD EPYC 9R14 |", provenance)
        weight_noise = section(summary, "## Experiment 1")
        self.assertIn("| CPU spread, native runs only (alpha / best T) |", weight_noise)
        self.assertIn("This run used the reference profile", weight_noise)

    def test_native_profile_from_benchmark_context(self):
        doc = synthetic_results(families=("WeightNoise",))
        benchmark = synthetic_benchmark_json(["WeightNoise/scale:0.01"])
        benchmark["context"]["tstar_compute_profile"] = "native"
        run_dir = self.make_run(doc, benchmark)
        out_dir = os.path.join(self.tmp.name, "out")
        result = run_report(run_dir, "--out", out_dir, "--cpu-spread", self.spread_file())
        self.assertEqual(result.returncode, 0, result.stderr)
        with open(os.path.join(out_dir, "summary.md"), encoding="utf-8") as f:
            self.assertIn("| compute profile | native: statistics move between CPUs", f.read())

    def test_default_is_the_repository_baseline_when_it_exists(self):
        # A copy of ci/ in a scratch repository: results/baseline/cpu-spread.json beside it is used.
        root = os.path.join(self.tmp.name, "repo")
        os.makedirs(os.path.join(root, "ci"))
        for name in ("report", "tstar_results.py", "tstar_spread.py"):
            with open(os.path.join(SOURCE_DIR, "ci", name), encoding="utf-8") as f:
                text = f.read()
            with open(os.path.join(root, "ci", name), "w", encoding="utf-8") as f:
                f.write(text)
        shutil.copytree(os.path.join(SOURCE_DIR, "ci", "tstar_report"), os.path.join(root, "ci", "tstar_report"),
                        ignore=shutil.ignore_patterns("__pycache__"))
        run_dir = self.make_run(synthetic_results(families=("WeightNoise",)))
        out_dir = os.path.join(self.tmp.name, "out")
        copy = [self.python, os.path.join(root, "ci", "report"), run_dir, "--out", out_dir]
        for present in (False, True):
            with self.subTest(present=present):
                if present:
                    os.makedirs(os.path.join(root, "results", "baseline"))
                    write_json(os.path.join(root, "results", "baseline", "cpu-spread.json"),
                               spread_document(self.MEASURED))
                result = subprocess.run(copy, capture_output=True, text=True, timeout=300)
                self.assertEqual(result.returncode, 0, result.stderr)
                with open(os.path.join(out_dir, "summary.md"), encoding="utf-8") as f:
                    self.assertEqual("CPU spread (alpha / best T)" in f.read(), present)

    def test_bad_spread_file_exits_2(self):
        run_dir = self.make_run(synthetic_results(families=("WeightNoise",)))
        broken = os.path.join(self.tmp.name, "broken.json")
        with open(broken, "w", encoding="utf-8") as f:
            f.write("{not json")
        wrong = os.path.join(self.tmp.name, "wrong.json")
        write_json(wrong, dict(spread_document(self.MEASURED),
                               by_family={"Layer": {"alpha": {"max_rel": -1, "max_abs": 0}}}))
        old = os.path.join(self.tmp.name, "old.json")   # format 1: one spread per counter
        write_json(old, {"counters": {"alpha": {"max_rel": 0.1, "max_abs": 0}}, "by_family": {"Layer": {"alpha": 0.1}},
                         "tolerance": {"alpha": {"rel": 0.2, "abs": 0}}})
        for bad in (broken, wrong, old, os.path.join(self.tmp.name, "absent.json")):
            with self.subTest(bad=bad):
                result = run_report(run_dir, "--cpu-spread", bad)
                self.assert_error(result, bad)
                if bad == old:
                    self.assertIn("reads format 2", result.stderr)


@unittest.skipUnless(os.path.isfile(os.environ.get("TSTAR_BENCH_PATH", "")), "TSTAR_BENCH_PATH not set")
class BenchRunTest(ReportTestCase):
    def test_report_on_a_bench_run(self):
        root = os.path.join(self.tmp.name, "runs")
        bench = subprocess.run(
            [os.environ["TSTAR_BENCH_PATH"], "--results", root, "--seeds", "2", "--scales", "0,0.005,0.02",
             "--detail-scales", "0.01,0.02", "--benchmark_filter=^(WeightNoise|Layer|Evolution|TempSweep)/",
             "--benchmark_min_time=0.01"], capture_output=True, text=True, timeout=600)
        self.assertEqual(bench.returncode, 0, bench.stderr[-2000:])
        (run_id,) = os.listdir(root)
        summary = self.check_full_report(os.path.join(root, run_id), os.path.join(self.tmp.name, "out"))
        self.assertIn("`Layer/all/scale:0.02/manual_time`", section(summary, "## Timings"))  # --timing protocol
        rows = table_rows(section(summary, "## Experiment 3"))
        self.assertEqual(len(rows), 2 * 3)  # 3 prompts at 2 detail scales


if __name__ == "__main__":
    unittest.main()
