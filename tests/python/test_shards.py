"""Sharded bench runs and `tstar merge` (docs/design.md, "Work units and shards").

On the smoke suite's statistics settings (ci/smoke_args.sh; fewer timing repetitions, which change
no statistic): the merge of N = 1, 2, 3 and 7 shards equals a one-process run bit for bit (results.json's
"results", and every statistic counter of every benchmark.json row, aggregates included); a shard
killed with SIGKILL mid-run and rerun reuses its finished units and gives the same bits; and each of
the merge's refusals. Needs TSTAR_BENCH_PATH and TSTAR_TOOL_PATH (ctest sets them).
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

SOURCE_DIR = os.environ.get("TSTAR_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")
BENCH = os.environ.get("TSTAR_BENCH_PATH")
TOOL = os.environ.get("TSTAR_TOOL_PATH")

# Google Benchmark's own row fields; every other key of an experiment row is a statistic counter.
ROW_FIELDS = {"name", "family_index", "per_family_instance_index", "run_name", "run_type", "repetitions",
              "repetition_index", "threads", "iterations", "real_time", "cpu_time", "time_unit",
              "aggregate_name", "aggregate_unit", "label", "error_occurred", "error_message"}


def smoke_args():
    """ci/smoke_args.sh's arguments, with 2 timing repetitions of a short minimum time."""
    script = f'source "{SOURCE_DIR}/ci/smoke_args.sh"; set_smoke_args "{BENCH}"; printf "%s\\n" "${{smoke_args[@]}}"'
    args = subprocess.run(["bash", "-c", script], check=True, capture_output=True, text=True).stdout.splitlines()
    timing = [a for a in args if not a.startswith(("--benchmark_repetitions=", "--benchmark_min_time="))]
    return timing + ["--benchmark_repetitions=2", "--benchmark_min_time=0.001"]


def bench(run_dir, *args, **kwargs):
    return subprocess.run([BENCH, "--run-dir", run_dir, *args], capture_output=True, text=True, **kwargs)


def merge(out, *dirs):
    return subprocess.run([TOOL, "merge", *dirs, "--out", out], capture_output=True, text=True)


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def statistics_rows(benchmark_json):
    """{(run_name, repetition or aggregate): {counter: value}} over every row, rates dropped."""
    rows = {}
    for row in load(benchmark_json)["benchmarks"]:
        key = (row["run_name"], str(row.get("aggregate_name") or row.get("repetition_index")))
        rows[key] = {k: v for k, v in row.items() if k not in ROW_FIELDS and not k.endswith(("_per_s", "_per_second"))}
    return rows


def same_float(a, b):
    return a == b or (a != a and b != b)  # NaN equals NaN here: the bits are what matters


@unittest.skipUnless(BENCH and TOOL, "needs TSTAR_BENCH_PATH and TSTAR_TOOL_PATH (run through ctest)")
class ShardedRuns(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="tstar-shards-")
        cls.args = smoke_args()
        single = os.path.join(cls.work, "single")
        done = bench(single, *cls.args, "--quiet")
        if done.returncode != 0:
            raise RuntimeError(f"one-process bench failed: {done.stderr}")
        cls.single = single

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.work, ignore_errors=True)

    def run_shards(self, count, *extra):
        dirs = []
        for k in range(count):
            run_dir = os.path.join(self.work, f"of{count}", f"shard-{k}")
            done = bench(run_dir, "--shard", f"{k}/{count}", "--quiet", *self.args, *extra)
            self.assertEqual(done.returncode, 0, done.stderr)
            self.assertEqual(done.stderr.count("tstar: units"), 0, "--quiet printed progress")
            dirs.append(run_dir)
        return dirs

    def assert_same_as_single(self, merged, single=None):
        single = single or self.single
        single_results = load(os.path.join(single, "results.json"))["results"]
        merged_results = load(os.path.join(merged, "results.json"))["results"]
        self.assertEqual(json.dumps(single_results, sort_keys=True), json.dumps(merged_results, sort_keys=True))
        single_rows = statistics_rows(os.path.join(single, "benchmark.json"))
        merged_rows = statistics_rows(os.path.join(merged, "benchmark.json"))
        self.assertEqual(sorted(single_rows), sorted(merged_rows))
        for key, counters in single_rows.items():
            self.assertEqual(sorted(counters), sorted(merged_rows[key]), key)
            for counter, value in counters.items():
                self.assertTrue(same_float(value, merged_rows[key][counter]),
                                f"{key} {counter}: {value!r} vs {merged_rows[key][counter]!r}")

    def test_merged_equals_one_process(self):
        for count in (1, 2, 3, 7):
            with self.subTest(shards=count):
                dirs = self.run_shards(count)
                merged = os.path.join(self.work, f"of{count}", "merged")
                done = merge(merged, *dirs)
                self.assertEqual(done.returncode, 0, done.stderr)
                self.assert_same_as_single(merged)
                if count == 3:
                    ShardedRuns.three = dirs

    def test_resume_after_sigkill(self):
        run_dir = os.path.join(self.work, "killed")
        command = [BENCH, "--run-dir", run_dir, "--shard", "1/3", *self.args]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        units = os.path.join(run_dir, "units")
        deadline = time.time() + 120
        while time.time() < deadline and process.poll() is None:
            if os.path.isdir(units) and any(f.endswith(".safetensors") for f in os.listdir(units)):
                break
            time.sleep(0.001)
        process.send_signal(signal.SIGKILL)
        process.wait()
        # A killed run leaves nothing that looks complete.
        self.assertFalse(os.path.exists(os.path.join(run_dir, "shard.json")))
        self.assertFalse(os.path.exists(os.path.join(run_dir, "benchmark.json")))
        finished = sorted(f for f in os.listdir(units) if f.endswith(".safetensors"))
        self.assertGreater(len(finished), 0)
        if len(finished) > 1:  # one finished unit lost too: it is recomputed, the others reused
            os.remove(os.path.join(units, finished[-1]))
        rerun = subprocess.run(command, capture_output=True, text=True)
        self.assertEqual(rerun.returncode, 0, rerun.stderr)
        self.assertIn("reused)", rerun.stderr)  # the plain progress line: "units n/m (k reused)"
        manifest = load(os.path.join(run_dir, "shard.json"))
        self.assertEqual(manifest["reused_units"], max(1, len(finished) - 1))
        others = self.run_shards(3) if not hasattr(self, "three") else self.three
        merged = os.path.join(self.work, "killed-merged")
        done = merge(merged, others[0], run_dir, others[2])
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assert_same_as_single(merged)

    # ---- refusals: one line naming what is wrong, a failing exit status ----

    def assert_one_line(self, done, *words):
        self.assertEqual(done.returncode, 1, done.stderr)
        lines = done.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, done.stderr)
        self.assertTrue(lines[0].startswith("error: tstar merge: "), lines[0])
        for word in words:
            self.assertIn(word, lines[0])

    SMALL = ["--seeds", "2", "--detail-scales", "0.02", "--benchmark_filter=^Layer/lm_head/", "--quiet"]

    def small_shard(self, name, shard, *extra):
        """A cheap shard (one Layer instance, protocol timing) with `extra` settings."""
        run_dir = os.path.join(self.work, name, f"shard-{shard.split('/')[0]}")
        done = bench(run_dir, "--shard", shard, *self.SMALL, *extra)
        self.assertEqual(done.returncode, 0, done.stderr)
        return run_dir

    def small_shards(self):
        """Shards 0/2 and 1/2 of the cheap run, made once."""
        if not hasattr(ShardedRuns, "small"):
            ShardedRuns.small = [self.small_shard("small", f"{k}/2") for k in range(2)]
        return ShardedRuns.small

    def copy_shards(self, dirs, name):
        copies = []
        for k, source in enumerate(dirs):
            copy = os.path.join(self.work, name, f"shard-{k}")
            shutil.copytree(source, copy)
            copies.append(copy)
        return copies

    def edit_manifest(self, run_dir, edit):
        path = os.path.join(run_dir, "shard.json")
        manifest = load(path)
        edit(manifest)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(manifest, f)

    def test_protocol_timing_merges_too(self):
        """Under --timing protocol no shard runs the experiment benchmarks: the merge writes their rows."""
        single = os.path.join(self.work, "small-single")
        done = bench(single, *self.SMALL)
        self.assertEqual(done.returncode, 0, done.stderr)
        merged = os.path.join(self.work, "small-merged")
        done = merge(merged, *self.small_shards())
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assert_same_as_single(merged, single)
        rows = load(os.path.join(merged, "benchmark.json"))["benchmarks"]
        self.assertEqual([row["run_name"] for row in rows], ["Layer/lm_head/scale:0.02/manual_time"])
        self.assertGreater(rows[0]["real_time"], 0)

    def test_refuses_different_settings(self):
        other = self.small_shard("seeds", "1/2", "--seeds", "3")
        self.assert_one_line(merge(os.path.join(self.work, "out"), self.small_shards()[0], other), "different runs",
                             "settings")

    def test_refuses_different_prompts(self):
        prompts = os.path.join(self.work, "prompts.json")
        with open(prompts, "w", encoding="utf-8") as f:
            json.dump(["Count: 1, 2, 3,", "I have 2 cats and 1 dog."], f)
        other = self.small_shard("prompts", "1/2", "--prompts", prompts)
        self.assert_one_line(merge(os.path.join(self.work, "out"), self.small_shards()[0], other), "different runs",
                             "prompts")

    def test_refuses_different_model_or_commit(self):
        dirs = self.small_shards()
        for key, words in (("weights_sha256", "model digest"), ("tstar_commit", "tstar commit")):
            with self.subTest(key=key):
                copies = self.copy_shards(dirs, f"edited-{key}")
                self.edit_manifest(copies[1], lambda m: m["identity"].update({key: "0" * 64}))
                self.assert_one_line(merge(os.path.join(self.work, "out"), *copies), "different runs", words)

    def test_refuses_missing_duplicated_and_truncated_units(self):
        dirs = self.small_shards()
        units = [os.path.join(d, "units", f) for d in dirs for f in sorted(os.listdir(os.path.join(d, "units")))]
        out = os.path.join(self.work, "out")
        # A shard not given at all, and one unit file lost.
        self.assert_one_line(merge(out, dirs[0]), "missing", "shard 1/2")
        copies = self.copy_shards(dirs, "lost")
        lost = os.path.join(copies[1], "units", os.listdir(os.path.join(copies[1], "units"))[0])
        os.remove(lost)
        self.assert_one_line(merge(out, *copies), "1 of", "missing")
        # The same unit in two shards.
        copies = self.copy_shards(dirs, "twice")
        shutil.copy(units[0], os.path.join(copies[1], "units"))
        self.assert_one_line(merge(out, *copies), "given twice", os.path.basename(units[0]))
        # A truncated unit file.
        copies = self.copy_shards(dirs, "truncated")
        victim = os.path.join(copies[1], "units", os.listdir(os.path.join(copies[1], "units"))[0])
        with open(victim, "r+b") as f:
            f.truncate(os.path.getsize(victim) // 2)
        self.assert_one_line(merge(out, *copies), "truncated", os.path.basename(victim))

    def test_refuses_unfinished_or_repeated_shards(self):
        dirs = self.small_shards()
        out = os.path.join(self.work, "out")
        self.assert_one_line(merge(out, dirs[0], dirs[0]), "given twice")
        copies = self.copy_shards(dirs, "no-manifest")
        os.remove(os.path.join(copies[1], "shard.json"))
        self.assert_one_line(merge(out, *copies), "no shard.json", "did not finish")
        other_count = self.small_shard("three", "1/3")
        self.assert_one_line(merge(out, dirs[0], other_count), "of 2 shards")


if __name__ == "__main__":
    unittest.main()
