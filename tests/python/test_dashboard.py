"""ci/record (history records) and ci/dashboard (static HTML page of the history).

Run: cd tests/python && TSTAR_SOURCE_DIR=$PWD/../.. python3 -m unittest -v test_dashboard
"""

import html.parser
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import unittest

SOURCE_DIR = os.path.abspath(os.environ.get("TSTAR_SOURCE_DIR",
                                            os.path.join(os.path.dirname(__file__), "..", "..")))
CI_DIR = os.path.join(SOURCE_DIR, "ci")
sys.path.insert(0, CI_DIR)

import tstar_history  # noqa: E402
import tstar_results  # noqa: E402

RED = (0xd6, 0x27, 0x28)  # the dashboard's regression marker colour (#d62728)

# Decodes the screenshot with matplotlib and prints what the test checks. It runs in a separate
# interpreter because ctest's python3 may lack Debian's python3-matplotlib, which /usr/bin/python3 has.
SCREENSHOT_SUMMARY = textwrap.dedent('''
    import json, sys
    import matplotlib.image
    image = matplotlib.image.imread(sys.argv[1])[:, :, :3] * 255
    red = tuple(int(c) for c in sys.argv[2:5])
    colours = {tuple(p) for p in image[::4, ::4].round().astype(int).reshape(-1, 3).tolist()}
    print(json.dumps({"shape": list(image.shape[:2]), "std": float(image.std() / 255),
                      "colours": len(colours),
                      "red_pixels": int((abs(image - red) <= 3).all(axis=2).sum())}))
''')

# Used only while ci/tstar_compare.py is not in the tree (it is written on another branch): the
# same API, with the gate's rules this test needs (slower or faster with separated samples, a
# changed statistic). PYTHONPATH comes after ci/, so the real module wins once it exists.
STAND_IN_COMPARE = textwrap.dedent('''
    import dataclasses, math

    @dataclasses.dataclass
    class Row:
        name: str
        status: str = "ok"
        failed: bool = False
        base_time_ns: float = math.nan
        new_time_ns: float = math.nan
        time_change: float = None
        p_value: float = None
        stat_changes: list = dataclasses.field(default_factory=list)
        note: str = ""

    def compare_runs(base, new, *, fail_threshold=0.10, alpha=0.05, stat_tolerance=0.0, gate_time=True):
        rows = []
        for name, b in base.items():
            if name not in new:
                rows.append(Row(name, "missing", True))
                continue
            n = new[name]
            row = Row(name, base_time_ns=b.median_time_ns(), new_time_ns=n.median_time_ns())
            row.time_change = row.new_time_ns / row.base_time_ns - 1
            separated = min(n.real_time_ns) > max(b.real_time_ns) or max(n.real_time_ns) < min(b.real_time_ns)
            row.p_value = 0.002 if separated else 0.5
            row.stat_changes = [(k, v, n.statistics.get(k)) for k, v in b.statistics.items()
                                if n.statistics.get(k) != v]
            if row.stat_changes:
                row.status, row.failed = "changed", True
            elif separated and row.time_change > fail_threshold and gate_time:
                row.status, row.failed = "slower", True
            elif separated and row.time_change < -fail_threshold:
                row.status = "faster"
            rows.append(row)
        rows += [Row(name, "new") for name in new if name not in base]
        return rows
''')

FORWARD = "Forward/seq:16/real_time"
NOISE = "WeightNoise/scale:0.01/real_time"
SYNTHETIC = "Synthetic/V:2000/logit_std:2/noise_std:0.6"


def benchmark_rows(name, times_ms, counters, rates=None):
    """Google Benchmark 1.7.1 'iteration' rows (one per repetition) plus a mean aggregate row."""
    rows = []
    for index, time in enumerate(times_ms):
        row = {"name": name, "run_name": name, "run_type": "iteration", "repetitions": len(times_ms),
               "repetition_index": index, "threads": 1, "iterations": 2, "real_time": time,
               "cpu_time": time * 0.99, "time_unit": "ms"}
        row.update(counters)
        for rate, values in (rates or {}).items():
            row[rate] = values[index]
        rows.append(row)
    rows.append(dict(rows[0], name=name + "_mean", run_type="aggregate", aggregate_name="mean"))
    return rows


def benchmark_json(commit, date, forward_ms, alpha):
    """One run: Forward has a tokens_per_s rate, WeightNoise the experiment statistics."""
    reps = len(forward_ms)
    noise = {"alpha": alpha, "best_T": 1.0 + alpha / 2, "kl_T1": alpha / 10, "p_correct_T1": 0.8,
             "top1_match": 1.0, "scale": 0.01}
    rows = (benchmark_rows(FORWARD, forward_ms, {}, {"tokens_per_s": [16000.0 / t for t in forward_ms]})
            + benchmark_rows(NOISE, [9.0 + 0.01 * i for i in range(reps)], noise)
            + benchmark_rows(SYNTHETIC, [1.0 + 0.01 * i for i in range(reps)], {"alpha": 0.36}))
    return {"context": {"date": date, "host_name": "testhost", "tstar_tstar_commit": commit},
            "benchmarks": rows}


def write_run(folder, name, doc):
    run_dir = os.path.join(folder, "runs", name)
    os.makedirs(run_dir)
    with open(os.path.join(run_dir, "benchmark.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f)
    return run_dir


def matplotlib_python():
    """An interpreter that can import matplotlib: this one, else Debian's, else None."""
    for python in dict.fromkeys([sys.executable, "/usr/bin/python3"]):
        probe = subprocess.run([python, "-c", "import matplotlib.image"], capture_output=True, timeout=60)
        if probe.returncode == 0:
            return python
    return None


def run_tool(tool, *args, env=None):
    return subprocess.run([sys.executable, os.path.join(CI_DIR, tool), *args], capture_output=True,
                          text=True, timeout=60, env=env)


class PageParser(html.parser.HTMLParser):
    """Checks that elements nest properly and collects, per benchmark section (<h3>), the circles'
    fill colours and tooltips, plus all visible text."""
    VOID = {"meta", "br", "img", "hr", "input", "link"}
    SVG_SELF_CLOSED = {"rect", "line", "polygon", "polyline", "path", "circle"}

    def __init__(self):
        super().__init__()
        self.stack, self.problems, self.text = [], [], []
        self.section, self.in_h3, self.circles = None, False, {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "h3":
            self.in_h3, self.section = True, ""
        if tag == "circle":
            self.circles.setdefault(self.section, []).append({"fill": attrs.get("fill"), "title": ""})
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        if tag not in self.SVG_SELF_CLOSED | self.VOID:
            self.problems.append(f"unexpected self-closed <{tag}/>")

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:]}")
            return
        self.stack.pop()
        if tag == "h3":
            self.in_h3 = False

    def handle_data(self, data):
        self.text.append(data)
        if self.in_h3:
            self.section += data
        if self.stack and self.stack[-1] == "title" and "circle" in self.stack:
            self.circles[self.section][-1]["title"] += data


class RecordTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="tstar-record-")
        self.history = os.path.join(self.tmp, "history")

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def crafted_run(self):
        doc = benchmark_json("abc123def4567", "2026-11-01T13:00:00+01:00", [5.0, 5.1, 5.2], 0.02)
        doc["benchmarks"] += benchmark_rows("Decode/failing", [1.0], {})
        doc["benchmarks"][-2].update(error_occurred=True, error_message="out of memory")
        doc["benchmarks"] += benchmark_rows("Layer/unstable", [2.0, 2.0], {"kl_T1": math.nan})
        doc["benchmarks"][-2]["kl_T1"] = 0.5  # second repetition differs: not reproducible
        return write_run(self.tmp, "20261101T120000Z-1", doc)

    def test_round_trip_gives_the_same_benchmark_runs(self):
        run_dir = self.crafted_run()
        done = run_tool("record", run_dir, "--history", self.history, "--label", "nightly")
        self.assertEqual(done.returncode, 0, done.stderr)
        # The run's context commit names the file; the date is converted to UTC.
        path = os.path.join(self.history, "20261101T120000Z-abc123def456.json")
        self.assertEqual(os.listdir(self.history), [os.path.basename(path)])  # no *.tmp left behind
        record = tstar_history.load_record(path)
        self.assertEqual((record["commit"], record["date"], record["host"], record["run"], record["label"]),
                         ("abc123def4567", "2026-11-01T12:00:00Z", "testhost", "20261101T120000Z-1", "nightly"))
        with open(path, encoding="utf-8") as f:
            json.loads(f.read(), parse_constant=lambda c: self.fail(f"record holds bare {c}"))
        original = tstar_results.load_benchmarks(run_dir)
        restored = tstar_history.runs_from_record(record)
        self.assertEqual(list(restored), list(original))
        for name, run in original.items():
            back = restored[name]
            self.assertEqual(back.real_time_ns, run.real_time_ns, name)
            self.assertEqual(back.cpu_time_ns, run.cpu_time_ns, name)
            self.assertEqual(back.rates, run.rates, name)
            self.assertEqual(back.errors, run.errors, name)
            self.assertEqual(back.inconsistent, run.inconsistent, name)
            self.assertEqual(set(back.statistics), set(run.statistics), name)
            for key, value in run.statistics.items():
                same = value == back.statistics[key] or (math.isnan(value) and math.isnan(back.statistics[key]))
                self.assertTrue(same, f"{name}: {key}: {value} != {back.statistics[key]}")
        self.assertEqual(restored[FORWARD].real_time_ns, [5e6, 5.1e6, 5.2e6])
        self.assertEqual(restored["Decode/failing"].errors, ["out of memory"])
        self.assertEqual(restored["Layer/unstable"].inconsistent, {"kl_T1"})

    def test_commit_option_overrides_the_context(self):
        done = run_tool("record", self.crafted_run(), "--history", self.history, "--commit", "fedcba987654321")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(os.listdir(self.history), ["20261101T120000Z-fedcba987654.json"])

    def assert_one_line_error(self, done, names):
        self.assertEqual(done.returncode, 2, done.stdout)
        lines = done.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, done.stderr)
        self.assertIn(names, lines[0])
        self.assertNotIn("Traceback", done.stderr)

    def test_missing_run_is_one_line_naming_it(self):
        missing = os.path.join(self.tmp, "no-such-run")
        self.assert_one_line_error(run_tool("record", missing, "--history", self.history), missing)
        self.assertFalse(os.path.exists(self.history))

    def test_bad_json_and_wrong_shape_are_one_line(self):
        run_dir = os.path.join(self.tmp, "bad")
        os.makedirs(run_dir)
        path = os.path.join(run_dir, "benchmark.json")
        for content in ("{not json", '{"benchmarks": 3}', '{"benchmarks": [{"name": "x", "run_type": '
                        '"iteration", "real_time": "fast", "cpu_time": 1}]}'):
            with open(path, "w", encoding="utf-8") as f:
                f.write(content)
            self.assert_one_line_error(run_tool("record", run_dir, "--history", self.history), path)


class DashboardTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="tstar-dashboard-")
        self.history = os.path.join(self.tmp, "history")
        self.env = dict(os.environ)
        if not os.path.exists(os.path.join(CI_DIR, "tstar_compare.py")):
            stand_in = os.path.join(self.tmp, "stand-in")
            os.makedirs(stand_in)
            with open(os.path.join(stand_in, "tstar_compare.py"), "w", encoding="utf-8") as f:
                f.write(STAND_IN_COMPARE)
            self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [self.env.get("PYTHONPATH"), stand_in]))

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def record_history(self):
        """Four runs, recorded out of date order: the third makes Forward twice as slow, the fourth
        changes WeightNoise's alpha (and the statistics derived from it)."""
        fast = [5.0, 5.05, 5.1, 5.02, 5.08, 5.04]
        runs = [("1111111aaaaa", "2026-11-04T10:00:00+00:00", fast, 0.0300),
                ("2222222bbbbb", "2026-11-02T10:00:00+00:00", fast, 0.0200),
                ("3333333ccccc", "2026-11-01T10:00:00+00:00", fast, 0.0200),
                ("4444444ddddd", "2026-11-03T10:00:00+00:00", [2 * t for t in fast], 0.0200)]
        for index, (commit, date, forward, alpha) in enumerate(runs):
            run_dir = write_run(self.tmp, f"run{index}", benchmark_json(commit, date, forward, alpha))
            done = run_tool("record", run_dir, "--history", self.history)
            self.assertEqual(done.returncode, 0, done.stderr)

    def make_page(self):
        self.record_history()
        out = os.path.join(self.tmp, "out", "dashboard.html")
        done = run_tool("dashboard", "--history", self.history, "--out", out, env=self.env)
        self.assertEqual(done.returncode, 0, done.stderr)
        with open(out, encoding="utf-8") as f:
            return out, f.read()

    def test_page_names_benchmarks_and_marks_the_regressions(self):
        _, page = self.make_page()
        parser = PageParser()
        parser.feed(page)
        parser.close()
        self.assertEqual(parser.problems, [])
        self.assertEqual(parser.stack, [])
        self.assertNotIn("<script", page.lower())
        self.assertNotIn("http://", page.replace('xmlns="http://www.w3.org/2000/svg"', ""))
        text = " ".join(parser.text)
        for name in (FORWARD, NOISE, SYNTHETIC):
            self.assertIn(name, parser.circles, f"no chart section for {name}")
        # Header: the commits in date order, the host.
        self.assertLess(text.index("3333333"), text.index("1111111"))
        self.assertIn("testhost", text)
        # Forward: slower at 4444444 (2026-11-03) against 2222222 (2026-11-02), nowhere else;
        # faster again at 1111111.
        red = {name: [c["title"] for c in circles if c["fill"] == "#d62728"]
               for name, circles in parser.circles.items()}
        self.assertEqual(len(red[FORWARD]), 1, red[FORWARD])
        self.assertIn("4444444", red[FORWARD][0])
        self.assertIn("REGRESSION vs 2222222", red[FORWARD][0])
        green = [c["title"] for c in parser.circles[FORWARD] if c["fill"] == "#2ca02c"]
        self.assertEqual(len(green), 1, green)
        self.assertIn("1111111", green[0])
        # WeightNoise: alpha, best_T and kl_T1 changed at 1111111 (the newest record).
        self.assertEqual(len(red[NOISE]), 3, red[NOISE])
        self.assertTrue(all("1111111" in title and "alpha" in title for title in red[NOISE]), red[NOISE])
        self.assertEqual(red[SYNTHETIC], [])
        # Both listed at the top, before the first chart: a marker in the table and in the contents.
        top = page[:page.index("<h3")]
        self.assertIn(FORWARD, top)
        self.assertIn(NOISE, top)
        self.assertNotIn(SYNTHETIC + " <svg", top)
        self.assertEqual(top.count('fill="#d62728"'), 2 + 2)

    def test_empty_or_missing_history_is_one_clear_error(self):
        os.makedirs(self.history)
        for history in (self.history, os.path.join(self.tmp, "absent")):
            done = run_tool("dashboard", "--history", history, "--out", os.path.join(self.tmp, "d.html"),
                            env=self.env)
            self.assertEqual(done.returncode, 2)
            self.assertEqual(len(done.stderr.strip().splitlines()), 1, done.stderr)
            self.assertIn(history, done.stderr)
            self.assertFalse(os.path.exists(os.path.join(self.tmp, "d.html")))

    def test_bad_record_is_one_line_naming_it(self):
        self.record_history()
        bad = os.path.join(self.history, "20261105T000000Z-5555555.json")
        for content in ("{not json", '{"schema": 1, "commit": "5555555", "date": "2026-11-05T00:00:00Z", '
                        '"benchmarks": {"x": {"real_time_ns": ["slow"]}}}'):
            with open(bad, "w", encoding="utf-8") as f:
                f.write(content)
            done = run_tool("dashboard", "--history", self.history, "--out", os.path.join(self.tmp, "d.html"),
                            env=self.env)
            self.assertEqual(done.returncode, 2)
            self.assertEqual(len(done.stderr.strip().splitlines()), 1, done.stderr)
            self.assertIn(bad, done.stderr)

    def test_chromium_renders_a_page_that_is_not_blank(self):
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        if not chromium:
            self.skipTest("no chromium binary on PATH (Debian package `chromium`): page not rendered")
        python = matplotlib_python()
        if not python:
            self.skipTest("no python3 with matplotlib (Debian python3-matplotlib) to decode the screenshot")
        out, _ = self.make_page()
        png = os.path.join(self.tmp, "page.png")
        profile = os.path.join(self.tmp, "profile")
        done = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
             f"--screenshot={png}", "--window-size=1280,2000", "--hide-scrollbars",
             "file://" + os.path.abspath(out)], capture_output=True, text=True, timeout=120)
        self.assertTrue(os.path.exists(png), f"chromium wrote no screenshot: {done.stderr[-2000:]}")
        if os.environ.get("TSTAR_KEEP_SCREENSHOT"):
            shutil.copy(png, os.environ["TSTAR_KEEP_SCREENSHOT"])
        decoded = subprocess.run([python, "-c", SCREENSHOT_SUMMARY, png, *map(str, RED)],
                                 capture_output=True, text=True, timeout=60)
        self.assertEqual(decoded.returncode, 0, decoded.stderr)
        summary = json.loads(decoded.stdout)
        self.assertEqual(summary["shape"], [2000, 1280])
        self.assertGreater(summary["std"], 0.05, "screenshot is (nearly) one colour")
        self.assertGreater(summary["colours"], 20, "too few distinct colours for text and charts")
        self.assertGreater(summary["red_pixels"], 20, "the red regression marker is not visible")


def configured(doc, scales, seeds, cpu, model_sha):
    """A run's benchmark.json with the provenance keys bench writes into its context."""
    model = {"architecture": "Qwen2ForCausalLM", "config_sha256": model_sha, "device": "cpu", "dtype": "bf16",
             "model": "/cache/model", "weight_files_sha256": {"model.safetensors": model_sha}}
    doc["context"].update({"tstar_scales": scales, "tstar_seeds": seeds, "tstar_cpu_model": cpu,
                           "tstar_compute_profile": "native", "tstar_threads": "1",
                           "tstar_model": json.dumps(model)})
    return doc


SMOKE = dict(scales="[0.0,0.005,0.02]", seeds="[0,1]", cpu="AMD EPYC 9R14", model_sha="a" * 64)
MAIN = dict(scales="[0.0,0.001,0.002,0.005,0.01,0.02,0.05]", seeds="[0,1,2,3,4]", cpu="AMD EPYC 9R14",
            model_sha="b" * 64)
AVX2 = dict(SMOKE, cpu="Intel Xeon E5-2680 v4")


class SeriesTest(unittest.TestCase):
    """One series per configuration (settings, model, CPU model, device): records of different
    configurations are never compared, records of one configuration still are."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="tstar-series-")
        self.history = os.path.join(self.tmp, "history")

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def record(self, index, commit, day, config, forward_ms, alpha):
        doc = configured(benchmark_json(commit, f"2026-11-{day:02d}T10:00:00+00:00", forward_ms, alpha), **config)
        done = run_tool("record", write_run(self.tmp, f"run{index}", doc), "--history", self.history)
        self.assertEqual(done.returncode, 0, done.stderr)

    def page(self):
        out = os.path.join(self.tmp, "dashboard.html")
        done = run_tool("dashboard", "--history", self.history, "--out", out)
        self.assertEqual(done.returncode, 0, done.stderr)
        with open(out, encoding="utf-8") as f:
            return f.read()

    @staticmethod
    def regression_rows(page):
        table = page[page.index("<h2>Regressions</h2>"):page.index("<h2>Series</h2>")]
        return [row for row in table.split("<tr>")[1:] if "<svg" in row]

    def test_interleaved_configurations_make_no_cross_series_regressions(self):
        fast = [5.0, 5.05, 5.1, 5.02, 5.08, 5.04]
        # Smoke, main (23x the time, other statistics) and smoke on an AVX2 CPU (3x), interleaved;
        # the third smoke run is really twice as slow, the third main run changes alpha.
        runs = [("a1", SMOKE, fast, 0.02), ("b1", MAIN, [22.7 * t for t in fast], 0.05),
                ("c1", AVX2, [3 * t for t in fast], 0.02), ("a2", SMOKE, fast, 0.02),
                ("b2", MAIN, [22.7 * t for t in fast], 0.05), ("c2", AVX2, [3 * t for t in fast], 0.02),
                ("a3", SMOKE, [2 * t for t in fast], 0.02), ("b3", MAIN, [22.7 * t for t in fast], 0.06)]
        for index, (commit, config, forward, alpha) in enumerate(runs):
            self.record(index, commit * 6, index + 1, config, forward, alpha)
        page = self.page()
        rows = self.regression_rows(page)
        self.assertEqual(len(rows), 2, rows)
        slower = next(row for row in rows if FORWARD in row)
        self.assertIn("a2a2a2", slower)
        self.assertIn("a3a3a3", slower)
        self.assertIn("slower", slower)
        changed = next(row for row in rows if NOISE in row)
        self.assertIn("b2b2b2", changed)
        self.assertIn("b3b3b3", changed)
        self.assertIn("changed", changed)
        self.assertIn("8 records, 8 commits, 3 series", page)
        parser = PageParser()
        parser.feed(page)
        self.assertEqual(parser.problems, [])
        headings = [line for line in page.splitlines() if line.startswith('<h2 id="s')]
        self.assertEqual(len(headings), 3, headings)
        self.assertIn("AMD EPYC 9R14", headings[0])
        self.assertIn("Intel Xeon E5-2680 v4", headings[2])
        # Red points: one on Forward's chart (a3), three on WeightNoise's statistics (b3), none else.
        red = [c["title"] for circles in parser.circles.values() for c in circles if c["fill"] == "#d62728"]
        self.assertEqual(len(red), 4, red)
        self.assertTrue(all("a3a3a3" in t or "b3b3b3" in t for t in red), red)

    def test_one_configuration_is_one_series(self):
        for index in range(3):
            self.record(index, f"c{index}" * 6, index + 1, SMOKE, [5.0, 5.1, 5.2], 0.02)
        page = self.page()
        self.assertIn("3 records, 3 commits, 1 series", page)
        self.assertEqual(self.regression_rows(page), [])
        self.assertIn("No regressions between consecutive records of a series.", page)

    def test_record_stores_the_configuration_of_the_committed_baseline(self):
        done = run_tool("record", os.path.join(SOURCE_DIR, "results", "baseline", "embedded-smoke"),
                        "--history", self.history)
        self.assertEqual(done.returncode, 0, done.stderr)
        (name,) = os.listdir(self.history)
        record = tstar_history.load_record(os.path.join(self.history, name))
        self.assertEqual(record["schema"], 2)
        configuration = record["configuration"]
        self.assertEqual((configuration["cpu_model"], configuration["device"]), ("AMD EPYC", "cpu"))
        for part in ("settings_digest", "model_digest"):
            self.assertRegex(configuration[part], r"^[0-9a-f]{12}$")
        self.assertEqual(tstar_history.record_configuration(record), configuration)
        self.assertIn("AMD EPYC", configuration["key"])

    def test_settings_model_and_cpu_each_split_series(self):
        base = tstar_history.configuration(configured({"context": {}}, **SMOKE)["context"])
        for other in (MAIN, AVX2, dict(SMOKE, model_sha="c" * 64), dict(SMOKE, seeds="[0,1,2]")):
            changed = tstar_history.configuration(configured({"context": {}}, **other)["context"])
            self.assertNotEqual(changed["key"], base["key"], other)
        # Provenance that is no setting (commit, date, BLAS) does not.
        context = configured({"context": {"date": "x", "tstar_tstar_commit": "y", "tstar_openblas_core": "z"}},
                             **SMOKE)["context"]
        self.assertEqual(tstar_history.configuration(context)["key"], base["key"])

    def test_records_without_configuration_get_one_from_what_they_hold(self):
        committed = os.path.join(SOURCE_DIR, "results", "history")
        for name in sorted(os.listdir(committed)):
            record = tstar_history.load_record(os.path.join(committed, name))
            if "configuration" in record:
                continue
            configuration = tstar_history.record_configuration(record)
            self.assertIn(f"host {record['host']}", configuration["key"])
            self.assertEqual(configuration["device"], "unknown")
        old = {"schema": 1, "commit": "x", "date": "2026-11-01T00:00:00Z", "host": "h1",
               "benchmarks": {FORWARD: {}, NOISE: {}}}
        other_host = dict(old, host="h2")
        other_benchmarks = dict(old, benchmarks={FORWARD: {}})
        keys = {tstar_history.record_configuration(r)["key"] for r in (old, other_host, other_benchmarks)}
        self.assertEqual(len(keys), 3)
        self.assertEqual(tstar_history.record_configuration(dict(old, commit="y"))["key"],
                         tstar_history.record_configuration(old)["key"])


class GateDefaultsTest(unittest.TestCase):
    def test_compare_and_dashboard_use_the_gates_defaults(self):
        import tstar_compare
        for tool in ("compare", "dashboard"):
            with open(os.path.join(CI_DIR, tool), encoding="utf-8") as f:
                text = f.read()
            self.assertIn("tstar_compare.DEFAULT_" if tool == "compare" else "DEFAULT_FAIL_THRESHOLD", text)
            # No threshold of its own: neither an argparse default nor an assignment of the numbers.
            self.assertNotRegex(text, r"(default=|= )0\.(10?|05)\b", tool)
        help_text = run_tool("compare", "--help").stdout
        self.assertIn(f"(default {tstar_compare.DEFAULT_FAIL_THRESHOLD:.2f})", " ".join(help_text.split()))


if __name__ == "__main__":
    unittest.main()
