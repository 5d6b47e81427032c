#!/usr/bin/env python3
"""Tokenizer encode speed: tstar's `Tokenizer/encode` benchmark against HF `tokenizers`.

    python ci/compare_tokenizer_speed.py BUILD/bench/bench [--tokenizer PATH] [--min-time SECONDS]

Times HF `tokenizers` (single thread) encoding fixtures/tokenizer/bench_text.txt with the same
tokenizer the benchmark uses (the Qwen2 tokenizer from ../shared when present, else the small
fixture tokenizer), runs `bench --benchmark_filter=Tokenizer/encode --benchmark_format=json`, and
prints both throughputs and the ratio tstar / HF (goal: >= 1.0). Both sides are timed in CPU time
of one thread with a warm word cache, so the comparison holds on a busy machine too. Prints a JSON
summary line last. Needs the `tokenizers` package (run it with a virtualenv's python that has it).
"""
import argparse
import json
import os
import subprocess
import sys
import time

# Before importing tokenizers: no Rayon worker threads.
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["RAYON_RS_NUM_CPUS"] = "1"
import tokenizers  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXT_PATH = os.path.join(REPO_ROOT, "fixtures/tokenizer/bench_text.txt")
CANDIDATES = [os.path.join(REPO_ROOT, "../shared/fixtures/qwen2-tokenizer/tokenizer.json"),
              os.path.join(REPO_ROOT, "fixtures/tokenizer/small/tokenizer.json")]


def hf_bytes_per_second(tokenizer_path, text, min_time):
    tok = tokenizers.Tokenizer.from_file(tokenizer_path)
    tok.encode(text)  # warm the word cache, as the C++ benchmark's repeated iterations do
    best = 0.0
    for _ in range(5):  # best of five rounds, each at least min_time/5 of CPU time
        iterations, start = 0, time.process_time()
        while True:
            tok.encode(text)
            iterations += 1
            elapsed = time.process_time() - start
            if elapsed >= min_time / 5:
                break
        best = max(best, iterations * len(text.encode("utf-8")) / elapsed)
    return best


def tstar_bytes_per_second(bench_binary, tokenizer_path, min_time):
    result = subprocess.run(
        [bench_binary, f"--tokenizer={tokenizer_path}", "--benchmark_filter=^Tokenizer/encode$",
         "--benchmark_format=json",
         f"--benchmark_min_time={min_time}", "--benchmark_repetitions=5",
         "--benchmark_report_aggregates_only=true"],
        check=True, capture_output=True, text=True)
    runs = json.loads(result.stdout)["benchmarks"]
    for run in runs:
        if run.get("error_occurred"):
            sys.exit(f"bench reported an error: {run.get('error_message')}")
    maxima = [r for r in runs if r.get("aggregate_name") == "max"]
    chosen = maxima[0] if maxima else max(runs, key=lambda r: r["bytes_per_second"])
    return chosen["bytes_per_second"], chosen.get("label", "")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bench", help="path of the built `bench` binary")
    parser.add_argument("--tokenizer", help="tokenizer.json for both sides (default: the Qwen2 tokenizer from "
                                            "../shared when present, else the small fixture tokenizer)")
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds per measurement (default 1)")
    args = parser.parse_args()
    tokenizer_path = args.tokenizer or next((p for p in CANDIDATES if os.path.exists(p)), None)
    if tokenizer_path is None:
        sys.exit("no tokenizer.json found")
    with open(TEXT_PATH, encoding="utf-8") as f:
        text = f.read()
    hf = hf_bytes_per_second(tokenizer_path, text, args.min_time)
    ours, label = tstar_bytes_per_second(args.bench, tokenizer_path, args.min_time)
    ratio = ours / hf
    print(f"tokenizer: {os.path.relpath(tokenizer_path, REPO_ROOT)} (bench label: {label})")
    print(f"text: {len(text.encode('utf-8'))} bytes")
    print(f"HF tokenizers {tokenizers.__version__} (1 thread): {hf / 1e6:.2f} MB/s")
    print(f"tstar Tokenizer/encode:            {ours / 1e6:.2f} MB/s")
    print(f"ratio tstar / HF: {ratio:.2f}x (goal >= 1.0)")
    print(json.dumps({"tstar_bytes_per_second": ours, "hf_bytes_per_second": hf, "ratio": ratio,
                      "tokenizers_version": tokenizers.__version__}))


if __name__ == "__main__":
    main()
