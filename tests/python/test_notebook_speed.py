"""ci/notebook_speed.py's argument handling without torch: --help, bad arguments, --python /
$TSTAR_HF_PYTHON, and one clear error (exit status 2) when the notebook side cannot import torch and
transformers. Runs neither the notebook nor bench (a stand-in executable is given as --bench); where
this interpreter has torch and transformers, the tests that expect the error are skipped.

Run: cd tests/python && TSTAR_SOURCE_DIR=$PWD/../.. /usr/bin/python3 -m unittest -v test_notebook_speed
"""

import importlib.util
import os
import sys
import tempfile
import unittest

from one_line_errors import OneLineErrors, run_with_hf_python

SOURCE_DIR = os.environ.get("TSTAR_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")
SCRIPT = os.path.join(SOURCE_DIR, "ci", "notebook_speed.py")
HAS_HF = all(importlib.util.find_spec(m) for m in ("torch", "transformers", "numpy"))
FAKE_BENCH = "/bin/true"   # passes the executable check; never reached when the notebook side fails


def run(*args, python=None):
    return run_with_hf_python(SCRIPT, *args, python=python, drop_prefixes=("TSTAR_HF_", "TSTAR_BENCH"))


class NotebookSpeedArgumentsTest(OneLineErrors, unittest.TestCase):
    def test_help_needs_no_torch(self):
        done = run("--help")
        self.assertEqual(done.returncode, 0, done.stderr)
        for option in ("--python PYTHON", "TSTAR_HF_PYTHON", "--model DIR", "--make-qwen2-0.5b DIR",
                       "--dtype", "--threads", "--bench PATH"):
            self.assertIn(option, done.stdout)
        self.assertNotIn("/work/venv", done.stdout)

    def test_bad_arguments(self):
        for args, words in ((["--threads", "0"], "--threads must be at least 1"),
                            (["--dtype", "fp16"], "invalid choice"),
                            (["--model", "m", "--make-qwen2-0.5b", "d"], "not both"),
                            (["--make-deepseek-1.5b", "m", "--make-qwen2-0.5b", "d"], "not both"),
                            (["--device", "tpu"], "invalid choice")):
            done = run(*args, "--bench", FAKE_BENCH)
            self.assertEqual(done.returncode, 2, done.stderr)
            self.assertIn(words, done.stderr)

    def test_missing_bench_is_one_clear_error(self):
        missing = os.path.join(SOURCE_DIR, "no-such-bench")
        self.assert_one_line(run("--bench", missing, "--python", sys.executable), missing, "no bench binary")

    def test_model_without_config(self):
        with tempfile.TemporaryDirectory() as tmp:
            self.assert_one_line(run("--bench", FAKE_BENCH, "--python", sys.executable, "--model", tmp),
                                 "no config.json")

    @unittest.skipIf(HAS_HF, "this python3 has torch and transformers")
    def test_missing_transformers_is_one_clear_error(self):
        self.assert_one_line(run("--bench", FAKE_BENCH), "not importable", sys.executable, "--python",
                             "TSTAR_HF_PYTHON")

    @unittest.skipIf(HAS_HF, "this python3 has torch and transformers")
    def test_named_interpreter_is_used_and_named_in_the_error(self):
        with tempfile.TemporaryDirectory() as tmp:
            wrapper, used = os.path.join(tmp, "python"), os.path.join(tmp, "used")
            with open(wrapper, "w", encoding="utf-8") as f:   # an "interpreter" that says it ran
                f.write(f'#!/bin/sh\necho run >> "{used}"\nexec "{sys.executable}" "$@"\n')
            os.chmod(wrapper, 0o755)
            for done in (run("--bench", FAKE_BENCH, "--python", wrapper), run("--bench", FAKE_BENCH, python=wrapper)):
                self.assert_one_line(done, "not importable", f"{wrapper} (from --python or $TSTAR_HF_PYTHON)")
            with open(used, encoding="utf-8") as f:
                self.assertEqual(f.read().split(), ["run", "run"])

    def test_named_interpreter_that_does_not_exist(self):
        missing = os.path.join(SOURCE_DIR, "no-such-python")
        for done in (run("--bench", FAKE_BENCH, "--python", missing), run("--bench", FAKE_BENCH, python=missing)):
            self.assert_one_line(done, missing, "not an executable file")


if __name__ == "__main__":
    unittest.main()
