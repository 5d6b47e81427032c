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


if __name__ == "__main__":
    unittest.main()
