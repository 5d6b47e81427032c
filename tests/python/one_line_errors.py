"""Shared assertion of the ci/ tools' error contract: exit status 2 and one line on stderr."""


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
