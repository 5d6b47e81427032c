"""ci/hf_speed.py without a hard-coded interpreter: --python / $TSTAR_HF_PYTHON, and one clear error
(exit status 2) when torch and transformers cannot be imported. Needs neither: where this
interpreter has them, the tests that expect the error are skipped.

Run: cd tests/python && TSTAR_SOURCE_DIR=$PWD/../.. /usr/bin/python3 -m unittest -v test_hf_speed
"""

import importlib.util
import os
import sys
import tempfile
import unittest

from one_line_errors import OneLineErrors, run_with_hf_python

SOURCE_DIR = os.environ.get("TSTAR_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")
SCRIPT = os.path.join(SOURCE_DIR, "ci", "hf_speed.py")
HAS_HF = all(importlib.util.find_spec(m) for m in ("torch", "transformers"))


def run(*args, python=None):
    return run_with_hf_python(SCRIPT, *args, python=python)


class HfSpeedInterpreterTest(OneLineErrors, unittest.TestCase):
    def test_help_and_usage_need_no_torch(self):
        done = run("--help")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("--python PYTHON", done.stdout)
        self.assertIn("TSTAR_HF_PYTHON", done.stdout)
        self.assertNotIn("/work/venv", done.stdout)
        done = run()
        self.assertEqual(done.returncode, 2)
        self.assertIn("give --preset (measure) or --compare BENCH_JSON", done.stderr)

    @unittest.skipIf(HAS_HF, "this python3 has torch and transformers")
    def test_missing_transformers_is_one_clear_error(self):
        self.assert_one_line(run("--preset", "tiny"), "not importable", sys.executable, "--python",
                             "TSTAR_HF_PYTHON")

    @unittest.skipIf(HAS_HF, "this python3 has torch and transformers")
    def test_named_interpreter_is_used_and_named_in_the_error(self):
        # The named interpreter is this one: it lacks them too, and says which was tried.
        for done in (run("--preset", "tiny", "--python", sys.executable), run("--preset", "tiny", python=sys.executable)):
            self.assert_one_line(done, "not importable", f"({sys.executable}, from --python or $TSTAR_HF_PYTHON)")

    @unittest.skipIf(HAS_HF, "this python3 has torch and transformers")
    def test_script_reruns_under_the_named_interpreter_once(self):
        with tempfile.TemporaryDirectory() as tmp:
            wrapper, used = os.path.join(tmp, "python"), os.path.join(tmp, "used")
            with open(wrapper, "w", encoding="utf-8") as f:   # an "interpreter" that says it ran
                f.write(f'#!/bin/sh\necho run >> "{used}"\nexec "{sys.executable}" "$@"\n')
            os.chmod(wrapper, 0o755)
            for done in (run("--preset", "tiny", "--python", wrapper), run("--preset", "tiny", python=wrapper)):
                self.assert_one_line(done, "not importable", wrapper)
            with open(used, encoding="utf-8") as f:
                self.assertEqual(f.read().split(), ["run", "run"])   # once per call: no loop

    @unittest.skipIf(HAS_HF, "this python3 has torch and transformers")
    def test_named_interpreter_that_does_not_exist(self):
        missing = os.path.join(SOURCE_DIR, "no-such-python")
        for done in (run("--preset", "tiny", "--python", missing), run("--preset", "tiny", python=missing)):
            self.assert_one_line(done, missing, "not an executable file")


if __name__ == "__main__":
    unittest.main()
