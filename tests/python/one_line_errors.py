"""Shared pieces of the ci/ tools' tests: the error contract (exit status 2 and one line on stderr)
and running a tool script with a chosen HF interpreter."""

import os
import subprocess
import sys


def run_with_hf_python(script, *args, python=None, drop_prefixes=("TSTAR_HF_",)):
    """Runs `script` with this interpreter; TSTAR_HF_PYTHON is `python` (unset when None), and variables
    with the given prefixes are removed so the caller's environment cannot steer the tool."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(tuple(drop_prefixes))}
    if python is not None:
        env["TSTAR_HF_PYTHON"] = python
    return subprocess.run([sys.executable, script, *args], capture_output=True, text=True, timeout=120, env=env)


class OneLineErrors:
    """Mixin for unittest.TestCase."""

    def assert_one_line(self, done, *words):
        """`done` (a CompletedProcess) failed with status 2 and one stderr line holding every word."""
        self.assertEqual(done.returncode, 2, done.stderr)
        lines = done.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, done.stderr)
        self.assertNotIn("Traceback", done.stderr)
        for word in words:
            self.assertIn(word, lines[0])
