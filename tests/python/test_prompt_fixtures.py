"""fixtures/prompts: the committed general-128.jsonl is make_general_prompts.py's output and well
formed; embedded-heldout-256.jsonl (when present) has >= 256 prompts with answers."""

import collections
import json
import os
import subprocess
import sys
import tempfile
import unittest

SOURCE_DIR = os.environ.get("TSTAR_SOURCE_DIR",
                            os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
PROMPTS_DIR = os.path.join(SOURCE_DIR, "fixtures", "prompts")
GENERAL = os.path.join(PROMPTS_DIR, "general-128.jsonl")
EMBEDDED = os.path.join(PROMPTS_DIR, "embedded-heldout-256.jsonl")
CATEGORIES = {"text", "code", "arithmetic", "multilingual"}


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return text, [json.loads(line) for line in text.splitlines()]


class PromptFixturesTest(unittest.TestCase):
    def assert_well_formed(self, row, need_answer=False):
        prompt = row.get("prompt")
        self.assertIsInstance(prompt, str, row)
        self.assertTrue(prompt, row)
        self.assertEqual(prompt, prompt.rstrip(), f"trailing whitespace: {prompt!r}")
        if need_answer:
            self.assertIn("answer", row, row)
        if "answer" in row:
            answer = row["answer"]
            self.assertIsInstance(answer, str, row)
            self.assertTrue(answer, row)
            self.assertEqual(answer, answer.strip(), f"answer with spaces: {answer!r}")

    def test_general_is_the_scripts_output(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "general.jsonl")
            result = subprocess.run([sys.executable, os.path.join(PROMPTS_DIR, "make_general_prompts.py"),
                                     "--out", out], capture_output=True, text=True)
            self.assertEqual(result.returncode, 0, result.stderr)
            with open(out, "rb") as f:
                generated = f.read()
        with open(GENERAL, "rb") as f:
            committed = f.read()
        self.assertEqual(committed, generated,
                         "rerun fixtures/prompts/make_general_prompts.py and commit its output")

    def test_general_shape(self):
        text, rows = read_jsonl(GENERAL)
        self.assertTrue(text.endswith("\n"))
        self.assertEqual(len(rows), 128)
        self.assertEqual(collections.Counter(row["category"] for row in rows),
                         {category: 32 for category in CATEGORIES})
        self.assertEqual(len({row["prompt"] for row in rows}), 128, "duplicate prompts")
        for row in rows:
            self.assertLessEqual(set(row), {"prompt", "answer", "category"}, row)
            self.assert_well_formed(row)
        answered = collections.Counter(row["category"] for row in rows if "answer" in row)
        for category in CATEGORIES:   # answers where clear: most prompts have one
            self.assertGreaterEqual(answered[category], 24, category)
        for row in rows:
            if row["category"] == "arithmetic":
                self.assertTrue(row["answer"].isdigit(), row)

    def test_general_is_utf8_not_escaped(self):
        text, rows = read_jsonl(GENERAL)
        self.assertIn("北京", text)
        self.assertNotIn("\\u", text)

    def test_embedded_heldout(self):
        if not os.path.exists(EMBEDDED):
            self.skipTest(f"{EMBEDDED} is absent")
        _, rows = read_jsonl(EMBEDDED)
        self.assertGreaterEqual(len(rows), 256)
        for row in rows:
            self.assert_well_formed(row, need_answer=True)


if __name__ == "__main__":
    unittest.main()
