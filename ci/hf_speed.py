#!/usr/bin/env python3
"""Hugging Face transformers (eager attention) speed on tstar's shape presets, with random weights.

It needs torch and transformers: run it with an interpreter that has them, or name one with
--python PYTHON or the environment variable TSTAR_HF_PYTHON (e.g. a virtualenv's bin/python); the
script then re-runs itself there. Without them it stops with exit status 2.

Measure one configuration (prints one JSON object):
    ci/hf_speed.py --python VENV/bin/python --preset qwen2.5-0.5b --dtype bf16 --threads 2

Compare with tstar's Google Benchmark JSON (`bench --benchmark_out=b.json --benchmark_out_format=json`),
measuring HF for every (preset, dtype) found there, or reusing earlier outputs of this script:
    TSTAR_HF_PYTHON=VENV/bin/python ci/hf_speed.py --compare b.json --threads 2 [--hf-results hf1.json hf2.json]

Prefill: batch 1, T tokens, no cache, logits of the last position only (as generate() does), best
of --repeats runs after a warm-up. Decode: after a prefill of T tokens into the KV cache, one token
at a time (greedy), --decode-steps tokens timed together, best of --repeats runs.
"""

import argparse
import inspect
import json
import math
import os
import re
import sys
import time
from pathlib import Path

# Imported by import_hf(), in the interpreter that has them (see the module doc).
torch = transformers = None
PYTHON_VARIABLE = "TSTAR_HF_PYTHON"
REEXEC_MARK = "TSTAR_HF_SPEED_REEXEC"   # set once re-run under PYTHON: stops a second re-run

# Shapes only; the weights are random. Keep in step with tstar's presets (src/config.h).
PRESETS = {
    "tiny": dict(hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=512, rope_theta=10000.0, tie_word_embeddings=False),
    "qwen2.5-0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                         num_key_value_heads=2, vocab_size=151936, rope_theta=1e6, tie_word_embeddings=True),
    "deepseek-r1-distill-qwen-1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                                          num_attention_heads=12, num_key_value_heads=2, head_dim=128,
                                          vocab_size=151936, rope_theta=10000.0, tie_word_embeddings=False),
}
DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}  # torch dtype names (fp16: GPU only)
SEED = 0


def build_model(preset, dtype, device):
    config = transformers.Qwen2Config(rms_norm_eps=1e-6, max_position_embeddings=32768, **PRESETS[preset])
    torch.manual_seed(SEED)
    with torch.device(device):
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=getattr(torch, DTYPES[dtype]),
                                                              attn_implementation="eager")
    return model.eval()


def cache_kwarg(model):
    """transformers 5.x renamed `past_key_values` to `cache`; accept either."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def synchronize(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def prompt_ids(config, length, device):
    gen = torch.Generator().manual_seed(SEED)
    return torch.randint(0, config.vocab_size, (1, length), generator=gen).to(device)


def time_prefill(model, ids, repeats, device):
    best = math.inf
    for run in range(repeats + 1):  # run 0 is a warm-up
        synchronize(device)
        start = time.perf_counter()
        model(input_ids=ids, use_cache=False, logits_to_keep=1)
        synchronize(device)
        if run > 0:
            best = min(best, time.perf_counter() - start)
    return ids.shape[1] / best


def decode_run(model, ids, steps, device):
    """Prefill into a fresh cache (untimed), then `steps` greedy tokens one at a time (timed)."""
    kw = cache_kwarg(model)
    cache = transformers.DynamicCache(config=model.config)
    out = model(input_ids=ids, use_cache=True, logits_to_keep=1, **{kw: cache})
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        token = out.logits[:, -1].argmax(-1, keepdim=True)  # [1, 1]
        out = model(input_ids=token, use_cache=True, **{kw: cache})
    synchronize(device)
    return time.perf_counter() - start


def time_decode(model, ids, steps, repeats, device):
    decode_run(model, ids, min(steps, 2), device)  # warm-up
    return steps / min(decode_run(model, ids, steps, device) for _ in range(repeats))


def measure(preset, dtype, threads, prefill, decode_steps, repeats, device):
    torch.set_num_threads(threads)
    start = time.perf_counter()
    model = build_model(preset, dtype, device)
    build_s = time.perf_counter() - start
    ids = prompt_ids(model.config, prefill, device)
    with torch.inference_mode():
        prefill_tps = time_prefill(model, ids, repeats, device)
        decode_tps = time_decode(model, ids, decode_steps, repeats, device)
    return {
        "preset": preset, "dtype": dtype, "threads": threads, "device": device,
        "prefill_tokens": prefill, "decode_steps": decode_steps, "repeats": repeats,
        "prefill_tokens_per_s": prefill_tps, "decode_tokens_per_s": decode_tps,
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "build_s": build_s,
        "attn_implementation": "eager",
        "torch": torch.__version__, "transformers": transformers.__version__,
    }


# ----------------------------------------------------------------------------- comparison

FORWARD_RE = re.compile(r"^Forward/(?P<preset>[^/]+)/(?P<dtype>[^/]+)/prefill:(?P<tokens>\d+)(/|$)")
DECODE_RE = re.compile(r"^Decode/(?P<preset>[^/]+)/(?P<dtype>[^/]+)(/|$)")


def tstar_rates(bench_json):
    """{(kind, preset, dtype, tokens): tokens_per_s} from Google Benchmark JSON. With repetitions,
    the best iteration run is used (HF's side is also best-of); with aggregates only, the median."""
    best, medians = {}, {}
    for run in bench_json.get("benchmarks", []):
        if "tokens_per_s" not in run or run.get("error_occurred"):
            continue
        name = run.get("run_name", run["name"])
        if m := FORWARD_RE.match(name):
            key = ("prefill", m["preset"], m["dtype"], int(m["tokens"]))
        elif m := DECODE_RE.match(name):
            key = ("decode", m["preset"], m["dtype"], None)
        else:
            continue
        rate = float(run["tokens_per_s"])
        if run.get("run_type", "iteration") == "iteration":
            best[key] = max(best.get(key, 0.0), rate)
        elif run.get("aggregate_name") == "median":
            medians[key] = rate
    return {**medians, **best}


def load_hf_results(paths):
    """Outputs of this script: one JSON object per file or JSON lines."""
    results = []
    for path in paths:
        text = Path(path).read_text().strip()
        try:
            data = json.loads(text)
            results.extend(data if isinstance(data, list) else [data])
        except json.JSONDecodeError:
            results.extend(json.loads(line) for line in text.splitlines() if line.strip())
    return results


def hf_rate(hf, kind, preset, dtype, tokens, threads):
    for r in hf:
        same_shape = r["preset"] == preset and r["dtype"] == dtype and r["threads"] == threads
        if same_shape and (kind == "decode" or r["prefill_tokens"] == tokens):
            return r[f"{kind}_tokens_per_s"]
    return None


def markdown_table(tstar, hf, threads):
    lines = ["| benchmark | tstar tokens/s | HF eager tokens/s | tstar / HF |",
             "|---|---:|---:|---:|"]
    for (kind, preset, dtype, tokens), rate in sorted(tstar.items(), key=lambda kv: str(kv[0])):
        label = f"{kind} {preset} {dtype}" + (f" T={tokens}" if tokens else "")
        ref = hf_rate(hf, kind, preset, dtype, tokens, threads)
        ratio = f"{rate / ref:.2f}x" if ref else "n/a"
        lines.append(f"| {label} | {rate:,.1f} | {f'{ref:,.1f}' if ref else 'n/a'} | {ratio} |")
    lines.append("")
    lines.append(f"HF: torch {torch.__version__}, transformers {transformers.__version__}, eager attention, "
                 f"{threads} thread(s), random weights, best of repeats; decode after a prefill of the "
                 f"HF --prefill length. Timings on a shared machine are approximate.")
    return "\n".join(lines)


def compare(args):
    bench = json.loads(Path(args.compare).read_text())
    tstar = tstar_rates(bench)
    if not tstar:
        sys.exit(f"{args.compare}: no Forward/<preset>/<dtype>/prefill:<T> or Decode/<preset>/<dtype> "
                 "runs with a tokens_per_s counter")
    context_threads = bench.get("context", {}).get("threads")
    if context_threads is not None and int(context_threads) != args.threads:
        print(f"warning: tstar ran with threads={context_threads}, HF with --threads {args.threads}",
              file=sys.stderr)
    hf = load_hf_results(args.hf_results) if args.hf_results else []
    for preset, dtype in sorted({(k[1], k[2]) for k in tstar}):
        if args.preset and preset != args.preset:  # a filter here: measure only this preset
            continue
        tokens = sorted({k[3] for k in tstar if k[1:3] == (preset, dtype) and k[3]}) or [args.prefill]
        for t in tokens:
            if preset in PRESETS and dtype in DTYPES and hf_rate(hf, "prefill", preset, dtype, t, args.threads) is None:
                result = measure(preset, dtype, args.threads, t, args.decode_steps, args.repeats, args.device)
                print(json.dumps(result), file=sys.stderr)
                hf.append(result)
    print(markdown_table(tstar, hf, args.threads))


def import_hf(python):
    """Imports torch and transformers; without them, re-runs this script under `python` (--python or
    $TSTAR_HF_PYTHON) once, or stops with one line saying what to do (exit status 2)."""
    global torch, transformers
    try:
        import torch as torch_module
        import transformers as transformers_module
    except ImportError as e:
        missing = e.name or "torch/transformers"
        if python and not os.environ.get(REEXEC_MARK) \
                and os.path.realpath(python) != os.path.realpath(sys.executable):
            if not (os.path.isfile(python) and os.access(python, os.X_OK)):
                print(f"hf_speed: {python} (--python or ${PYTHON_VARIABLE}): not an executable file", file=sys.stderr)
                sys.exit(2)
            os.environ[REEXEC_MARK] = "1"
            sys.stdout.flush()
            os.execv(python, [python, os.path.abspath(__file__)] + sys.argv[1:])
        where = f"{sys.executable}" + (f" ({python}, from --python or ${PYTHON_VARIABLE})" if python else "")
        print(f"hf_speed: {missing} is not importable with {where}: give --python PYTHON or set "
              f"{PYTHON_VARIABLE}=PYTHON to an interpreter with torch and transformers (e.g. a virtualenv's "
              f"bin/python)", file=sys.stderr)
        sys.exit(2)
    torch, transformers = torch_module, transformers_module


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", metavar="PYTHON", default=os.environ.get(PYTHON_VARIABLE),
                        help=f"interpreter with torch and transformers to run under when this one lacks them "
                             f"(default: ${PYTHON_VARIABLE})")
    parser.add_argument("--preset", choices=sorted(PRESETS))
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--prefill", type=int, default=128, help="prompt length T")
    parser.add_argument("--decode-steps", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (best is kept) after a warm-up")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--compare", metavar="BENCH_JSON", help="tstar Google Benchmark JSON output")
    parser.add_argument("--hf-results", nargs="*", metavar="JSON", help="earlier outputs of this script (--compare)")
    args = parser.parse_args()
    if not args.compare and not args.preset:
        parser.error("give --preset (measure) or --compare BENCH_JSON")
    import_hf(args.python)
    torch.set_num_interop_threads(1)
    if args.compare:
        compare(args)
    else:
        print(json.dumps(measure(args.preset, args.dtype, args.threads, args.prefill, args.decode_steps,
                                 args.repeats, args.device), indent=1))


if __name__ == "__main__":
    main()
