#!/usr/bin/env python3
"""tstar against the notebook itself: process wall time of the notebook's four experiments, run as its
cells are written (HF transformers, eager attention, torch on the CPU), and of tstar's `bench` running
the same experiments on the same checkpoint, dtype and threads. Ratio = notebook time / tstar time, so
tstar faster = ratio > 1.

    ci/notebook_speed.py --python VENV/bin/python [--model DIR] [--dtype fp32|bf16] [--threads N]
    ci/notebook_speed.py --python VENV/bin/python --make-qwen2-0.5b DIR --dtype fp32
    ci/notebook_speed.py --python VENV/bin/python --make-deepseek-1.5b DIR --device cuda   # on a GPU

The notebook side is a child process (`--child`, internal) running the notebook's code: its imports,
model and tokenizer load, weight_noise_context / get_logits / compute_statistics, and the cells of
experiments 1-4 (1: clean baseline logits and the sweep over NOISE_SCALES; 2: the seven layer groups
at 0.01 on the first prompt; 3: measure_noise_evolution on the three prompts, with its trend fit;
4: the temperature grid at 0.01). Left out: matplotlib plots and pandas tables (display only), and
device_map="auto": --device puts the whole model on the CPU (default) or the GPU (cuda), as
device_map="auto" does for a model that fits, and bench runs with the same --device. The child times each experiment inside; the parent times the
whole process, imports included.

The tstar side is one `bench` process: --seeds 1 --compute native --threads N --dtype D with a
--benchmark_filter on the four families (Layer restricted to the notebook's seven groups, which bench
omits when they are empty on a shallow model). Its per-experiment time is the sum of the family's
benchmark times (--timing protocol: each benchmark's statistics computation), its total the process.
tstar computes more than the notebook per experiment (every T* predictor, the exact best T, ...).

Only the child needs torch and transformers (and numpy): give the interpreter with --python PYTHON or
the environment variable TSTAR_HF_PYTHON (default: this interpreter). Without them it stops with one
line and exit status 2. Prints a table and one JSON summary line (last line of stdout).
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tstar_results  # ci/: Google Benchmark JSON as the other tools read it (standard library only)

PYTHON_VARIABLE = "TSTAR_HF_PYTHON"
BENCH_VARIABLE = "TSTAR_BENCH_PATH"
SOURCE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = SOURCE_DIR / "fixtures" / "models" / "tstar-counting"   # the embedded model's files
DEFAULT_BENCH = SOURCE_DIR / "build" / "bench" / "bench"
QWEN_TOKENIZER = Path("/work/shared/fixtures/qwen2-tokenizer")
RESULT_MARK = "NOTEBOOK_SPEED_RESULT "
MISSING_MARK = "NOTEBOOK_SPEED_MISSING "
MISSING_STATUS = 3

EXPERIMENTS = [("exp1", "WeightNoise", "1: weight noise -> alpha, T*"),
               ("exp2", "Layer", "2: layer groups"),
               ("exp3", "Evolution", "3: noise evolution"),
               ("exp4", "TempSweep", "4: temperature sweep")]
NOTEBOOK_LAYER_GROUPS = ("all", "attention", "mlp", "lm_head", "early", "middle", "late")
BENCH_FILTER = (r"^(WeightNoise|Layer/(" + "|".join(NOTEBOOK_LAYER_GROUPS) + r")|Evolution|TempSweep)/")

# Shapes of the random-weight checkpoints --make-* writes.
QWEN2_05B = dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                 num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True, rope_theta=1e6,
                 rms_norm_eps=1e-6, max_position_embeddings=32768)
DEEPSEEK_15B = dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                    num_key_value_heads=2, head_dim=128, vocab_size=151936, tie_word_embeddings=False,
                    rope_theta=10000.0, rms_norm_eps=1e-6, max_position_embeddings=131072)
SHAPES = {"qwen2.5-0.5b": QWEN2_05B, "deepseek-r1-distill-qwen-1.5b": DEEPSEEK_15B}


# ============================================================================ child: the notebook

def child_notebook(model_dir, dtype_name, threads, device="cpu"):
    """The notebook's cells (In [1] .. experiment 4), as written, minus plots and pandas."""
    t_start = time.perf_counter()
    times = {}
    try:
        global torch, F, np
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM, AutoTokenizer
        import numpy as np
        import transformers
    except ImportError as e:
        print(MISSING_MARK + (e.name or "torch/transformers"), file=sys.stderr)
        sys.exit(MISSING_STATUS)
    from typing import Dict, List, Optional
    from contextlib import contextmanager
    torch.set_num_threads(threads)
    times["import"] = time.perf_counter() - t_start

    # ---- Load Model
    t = time.perf_counter()
    MODEL_NAME = model_dir
    tokenizer = AutoTokenizer.from_pretrained(MODEL_NAME)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    try:
        model = AutoModelForCausalLM.from_pretrained(MODEL_NAME, dtype=dtype, attn_implementation="eager")
    except TypeError:   # transformers < 4.56 names it torch_dtype
        model = AutoModelForCausalLM.from_pretrained(MODEL_NAME, torch_dtype=dtype, attn_implementation="eager")
    model = model.to(device)
    times["load"] = time.perf_counter() - t

    # ---- Core Functions
    @contextmanager
    def weight_noise_context(model, noise_scale: float, noise_type: str = "gaussian",
                             target_layers: Optional[List[str]] = None):
        if noise_scale == 0:
            yield model, {}
            return

        original_weights = {}
        noise_info = {}

        for name, param in model.named_parameters():
            # Skip non-weight parameters
            if 'weight' not in name:
                continue
            if any(x in name.lower() for x in ['layernorm', 'ln', 'embed']):
                continue
            if target_layers is not None:
                if not any(pattern in name for pattern in target_layers):
                    continue

            original_weights[name] = param.data.clone()

            weight_std = param.data.std().item()
            absolute_scale = noise_scale * weight_std

            if noise_type == "gaussian":
                noise = torch.randn_like(param.data) * absolute_scale
            elif noise_type == "uniform":
                noise = (torch.rand_like(param.data) - 0.5) * 2 * absolute_scale * np.sqrt(3)
            else:
                noise = torch.randn_like(param.data) * absolute_scale

            param.data.add_(noise)

            noise_info[name] = {
                'weight_std': weight_std,
                'noise_std': absolute_scale,
                'snr': weight_std / (absolute_scale + 1e-10),
            }

        try:
            yield model, noise_info
        finally:
            for name, original in original_weights.items():
                param = dict(model.named_parameters())[name]
                param.data.copy_(original)

    def get_logits(model, tokenizer, prompt: str) -> torch.Tensor:
        inputs = tokenizer(prompt, return_tensors="pt").to(model.device)
        with torch.no_grad():
            outputs = model(**inputs)
        return outputs.logits[0, -1, :].float().cpu()

    def compute_statistics(logits_clean: torch.Tensor, logits_noisy: torch.Tensor) -> Dict:
        tau_sq = logits_clean.var().item()
        noise = logits_noisy - logits_clean
        sigma_sq = noise.var().item()

        alpha = sigma_sq / tau_sq if tau_sq > 0 else 0
        t_star = np.sqrt(1 + alpha)

        return {"tau_sq": tau_sq, "sigma_sq": sigma_sq, "alpha": alpha, "t_star": t_star}

    TEST_PROMPTS = [
        "Count the eggs: 🥚🥚🥚🥚🥚. How many eggs are there?",
        "I have 3 apples and 4 oranges. How many fruits in total?",
        "Count: 1, 2, 3, 4, 5, 6, 7. What's the last number?",
        "There are 2 cats, 3 dogs, and 1 bird. How many animals?",
    ]
    NOISE_SCALES = [0.0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05]

    # ---- Experiment 1
    t = time.perf_counter()
    print("Computing clean baseline logits...")
    clean_logits = {}
    for prompt in TEST_PROMPTS:
        clean_logits[prompt] = get_logits(model, tokenizer, prompt)
    print("Done!")

    results = []
    for noise_scale in NOISE_SCALES:
        print(f"\nTesting weight noise scale: {noise_scale}")
        all_stats = []
        with weight_noise_context(model, noise_scale) as (noisy_model, noise_info):
            for prompt in TEST_PROMPTS:
                logits_noisy = get_logits(noisy_model, tokenizer, prompt)
                stats = compute_statistics(clean_logits[prompt], logits_noisy)
                all_stats.append(stats)
        avg_alpha = np.mean([s['alpha'] for s in all_stats])
        avg_t_star = np.mean([s['t_star'] for s in all_stats])
        std_t_star = np.std([s['t_star'] for s in all_stats])
        results.append({'weight_noise': noise_scale, 'alpha': avg_alpha, 't_star': avg_t_star,
                        't_star_std': std_t_star})
        print(f"  α = {avg_alpha:.4f}, T* = {avg_t_star:.4f} ± {std_t_star:.4f}")
    times["exp1"] = time.perf_counter() - t

    # ---- Experiment 2
    t = time.perf_counter()
    layer_groups = {
        'all_layers': None,
        'attention': ['self_attn', 'q_proj', 'k_proj', 'v_proj', 'o_proj'],
        'mlp': ['mlp', 'gate_proj', 'up_proj', 'down_proj'],
        'early (0-7)': [f'layers.{i}.' for i in range(8)],
        'middle (8-23)': [f'layers.{i}.' for i in range(8, 24)],
        'late (24-31)': [f'layers.{i}.' for i in range(24, 32)],
        'lm_head': ['lm_head'],
    }
    noise_scale = 0.01
    prompt = TEST_PROMPTS[0]
    logits_clean = clean_logits[prompt]
    layer_results = []
    for group_name, patterns in layer_groups.items():
        with weight_noise_context(model, noise_scale, target_layers=patterns) as (noisy_model, noise_info):
            logits_noisy = get_logits(noisy_model, tokenizer, prompt)
            stats = compute_statistics(logits_clean, logits_noisy)
            layer_results.append({'group': group_name, 'n_params': len(noise_info), 'alpha': stats['alpha'],
                                  't_star': stats['t_star']})
            print(f"{group_name:15s}: {len(noise_info):3d} params, α = {stats['alpha']:.4f}, T* = {stats['t_star']:.4f}")
    times["exp2"] = time.perf_counter() - t

    # ---- Experiment 3
    t = time.perf_counter()

    def measure_noise_evolution(model, tokenizer, prompt, noise_scale, max_steps=15):
        clean_trajectory = []
        inputs = tokenizer(prompt, return_tensors="pt").to(model.device)
        input_ids = inputs.input_ids.clone()
        for t in range(max_steps):
            with torch.no_grad():
                logits = model(input_ids).logits[0, -1, :].float().cpu()
            token = logits.argmax().item()
            clean_trajectory.append({'logits': logits, 'token': token})
            input_ids = torch.cat([input_ids, torch.tensor([[token]]).to(model.device)], dim=1)

        alphas = []
        t_stars = []
        with weight_noise_context(model, noise_scale) as (noisy_model, _):
            inputs = tokenizer(prompt, return_tensors="pt").to(model.device)
            input_ids = inputs.input_ids.clone()
            for t in range(max_steps):
                with torch.no_grad():
                    logits_noisy = noisy_model(input_ids).logits[0, -1, :].float().cpu()
                stats = compute_statistics(clean_trajectory[t]['logits'], logits_noisy)
                alphas.append(stats['alpha'])
                t_stars.append(stats['t_star'])
                token = clean_trajectory[t]['token']
                input_ids = torch.cat([input_ids, torch.tensor([[token]]).to(model.device)], dim=1)

        return {'alphas': alphas, 't_stars': t_stars,
                'tokens': [tokenizer.decode([t['token']]) for t in clean_trajectory]}

    evolution_prompts = [
        "Count from 1 to 10: 1, 2,",
        "The capital of France is",
        "def fibonacci(n):\n    if n <= 1:",
    ]
    noise_scale = 0.01
    evolution_results = []
    for prompt in evolution_prompts:
        result = measure_noise_evolution(model, tokenizer, prompt, noise_scale)
        evolution_results.append({'prompt': prompt, **result})
        print(f"Prompt: {prompt[:30]}...")
        print(f"  α range: {min(result['alphas']):.4f} → {max(result['alphas']):.4f}")
    # the plot cell's trend fit
    max_len = max(len(r['alphas']) for r in evolution_results)
    avg_alphas = []
    for t_ in range(max_len):
        vals = [r['alphas'][t_] for r in evolution_results if t_ < len(r['alphas'])]
        if vals:
            avg_alphas.append(np.mean(vals))
    slope, intercept = np.polyfit(range(len(avg_alphas)), avg_alphas, 1)
    print(f"\nTrend slope: {slope:.6f}")
    times["exp3"] = time.perf_counter() - t

    # ---- Experiment 4
    t = time.perf_counter()
    noise_scale = 0.01
    temperatures = np.arange(0.8, 1.5, 0.02)
    temp_eval = {}
    with weight_noise_context(model, noise_scale) as (noisy_model, _):
        for prompt in TEST_PROMPTS:
            logits_clean = clean_logits[prompt]
            logits_noisy = get_logits(noisy_model, tokenizer, prompt)
            for temp in temperatures:
                if temp not in temp_eval:
                    temp_eval[temp] = {'kl_divs': [], 'prob_corrects': []}
                noisy_probs = F.softmax(logits_noisy / temp, dim=-1)
                clean_probs = F.softmax(logits_clean, dim=-1)
                kl = F.kl_div(noisy_probs.log(), clean_probs, reduction='sum').item()
                prob_correct = noisy_probs[logits_clean.argmax()].item()
                temp_eval[temp]['kl_divs'].append(kl)
                temp_eval[temp]['prob_corrects'].append(prob_correct)
    df_temp = sorted(({'temperature': temp, 'avg_kl': np.mean(data['kl_divs']),
                       'avg_prob_correct': np.mean(data['prob_corrects'])} for temp, data in temp_eval.items()),
                     key=lambda row: row['temperature'])
    best_temp = min(df_temp, key=lambda row: row['avg_kl'])['temperature']
    print(f"Best T (min KL): {best_temp:.4f}")
    times["exp4"] = time.perf_counter() - t

    print(RESULT_MARK + json.dumps({
        "times": times, "in_process_s": time.perf_counter() - t_start, "torch": torch.__version__,
        "transformers": transformers.__version__, "numpy": np.__version__,
        "torch_threads": torch.get_num_threads(), "dtype": str(model.dtype),
        "attn_implementation": getattr(model.config, "_attn_implementation", None),
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "alpha_at_0.01": next(r['alpha'] for r in results if r['weight_noise'] == 0.01)}), flush=True)


def child_make_qwen(directory, shape="qwen2.5-0.5b", device="cpu"):
    try:
        import torch
        import transformers
    except ImportError as e:
        print(MISSING_MARK + (e.name or "torch/transformers"), file=sys.stderr)
        sys.exit(MISSING_STATUS)
    config = transformers.Qwen2Config(**SHAPES[shape])
    torch.manual_seed(0)
    with torch.device(device):   # a GPU draws 1.8 G random weights in a moment
        model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    if shape != "qwen2.5-0.5b":
        model = model.to(torch.bfloat16)   # the checkpoint's own dtype, as the published one
    model.save_pretrained(directory, safe_serialization=True)
    print(f"wrote {directory}: {sum(p.numel() for p in model.parameters()):,} parameters", file=sys.stderr)


# ============================================================================ parent (standard library only)

def fail(message):
    print(f"notebook_speed: {message}", file=sys.stderr)
    sys.exit(2)


def check_python(python):
    if os.sep not in python and shutil.which(python):   # a bare name: look it up on PATH
        python = shutil.which(python)
    if not (os.path.isfile(python) and os.access(python, os.X_OK)):
        fail(f"{python} (--python or ${PYTHON_VARIABLE}): not an executable file")
    return python


def missing_error(python, stderr, named):
    """One line when the child could not import torch/transformers/numpy."""
    name = next((line[len(MISSING_MARK):].strip() for line in stderr.splitlines()
                 if line.startswith(MISSING_MARK)), "torch/transformers")
    where = python + (f" (from --python or ${PYTHON_VARIABLE})" if named else "")
    fail(f"{name} is not importable with {where}: give --python PYTHON or set {PYTHON_VARIABLE}=PYTHON "
         f"to an interpreter with torch and transformers (e.g. a virtualenv's bin/python)")


def thread_env(threads):
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def run_child(args, child_args, named):
    cmd = [args.python, os.path.abspath(__file__), "--child", *child_args]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=thread_env(args.threads))
    wall = time.perf_counter() - start
    if done.returncode == MISSING_STATUS:
        missing_error(args.python, done.stderr, named)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        fail(f"the notebook child failed (exit status {done.returncode}): {' '.join(cmd)}")
    return done, wall


def run_notebook(args, named):
    done, wall = run_child(args, ["notebook", "--model", str(args.model), "--dtype", args.dtype,
                                  "--threads", str(args.threads), "--device", args.device], named)
    if args.verbose:
        sys.stderr.write(done.stdout)
    line = next((l for l in reversed(done.stdout.splitlines()) if l.startswith(RESULT_MARK)), None)
    if line is None:
        fail("the notebook child printed no result line")
    result = json.loads(line[len(RESULT_MARK):])
    result["process_wall_s"] = wall
    return result


def run_bench(args):
    with tempfile.TemporaryDirectory(prefix="notebook_speed_") as tmp:
        out = os.path.join(tmp, "benchmark.json")
        cmd = [str(args.bench), "--model", str(args.model), "--dtype", args.dtype, "--seeds", "1",
               "--compute", "native", "--threads", str(args.threads), "--device", args.device,
               "--results", os.path.join(tmp, "runs"),
               f"--benchmark_filter={BENCH_FILTER}", f"--benchmark_out={out}", "--benchmark_out_format=json",
               *args.bench_arg]
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, env=thread_env(args.threads))
        wall = time.perf_counter() - start
        if done.returncode != 0:
            sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
            fail(f"bench failed (exit status {done.returncode}): {' '.join(cmd)}")
        if args.verbose:
            sys.stderr.write(done.stdout)
        runs = tstar_results.load_benchmarks(out)
    times = {key: 0.0 for key, _, _ in EXPERIMENTS}
    counts = {key: 0 for key, _, _ in EXPERIMENTS}
    for run in runs.values():
        for key, family, _ in EXPERIMENTS:
            if run.family == family:
                times[key] += sum(run.real_time_ns) * 1e-9
                counts[key] += len(run.real_time_ns)
    if not any(counts.values()):
        fail(f"bench ran no experiment benchmark (filter {BENCH_FILTER})")
    return {"times": times, "benchmarks": counts, "process_wall_s": wall, "command": cmd}


def best_of(runs):
    """The run with the least process wall time."""
    return min(runs, key=lambda r: r["process_wall_s"])


def ratio(a, b):
    return a / b if a and b else None


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def make_qwen(args, named, directory, shape):
    directory = Path(directory)
    if not (directory / "config.json").exists():
        directory.mkdir(parents=True, exist_ok=True)
        print(f"creating a random-weight {shape}-shape checkpoint in {directory} ...", file=sys.stderr)
        run_child(args, ["make-qwen", str(directory), "--shape", shape, "--device", args.device], named)
    if not (directory / "tokenizer.json").exists():
        tokenizer = Path(args.tokenizer) if args.tokenizer else QWEN_TOKENIZER
        if not (tokenizer / "tokenizer.json").exists():
            fail(f"{directory} needs a tokenizer: give --tokenizer DIR (a Qwen2 tokenizer.json and "
                 "tokenizer_config.json)")
        for name in ("tokenizer.json", "tokenizer_config.json"):
            if (tokenizer / name).exists():
                shutil.copyfile(tokenizer / name, directory / name)
    return directory


def table(nb, ts):
    rows = [("experiment", "notebook s", "tstar s", "notebook/tstar")]
    for key, _, label in EXPERIMENTS:
        a, b = nb["times"][key], ts["times"][key]
        r = ratio(a, b)
        rows.append((label, f"{a:.3f}", f"{b:.3f}", f"{r:.2f}x" if r else "n/a"))
    a = sum(nb["times"][k] for k, _, _ in EXPERIMENTS)
    b = sum(ts["times"][k] for k, _, _ in EXPERIMENTS)
    rows.append(("sum of experiments", f"{a:.3f}", f"{b:.3f}", f"{ratio(a, b):.2f}x"))
    rows.append(("notebook imports + load", f"{nb['times']['import'] + nb['times']['load']:.3f}", "", ""))
    a, b = nb["process_wall_s"], ts["process_wall_s"]
    rows.append(("process wall (total)", f"{a:.3f}", f"{b:.3f}", f"{ratio(a, b):.2f}x"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join([row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", metavar="DIR", type=Path,
                        help=f"HF checkpoint directory, both sides (default: the embedded model's files, {DEFAULT_MODEL})")
    parser.add_argument("--make-qwen2-0.5b", dest="make_qwen2_05b", metavar="DIR",
                        help="create (if absent) a random-weight Qwen2.5-0.5B-shape checkpoint in DIR with "
                             "transformers, and use it as --model")
    parser.add_argument("--make-deepseek-1.5b", dest="make_deepseek_15b", metavar="DIR",
                        help="the same with DeepSeek-R1-Distill-Qwen-1.5B's shape (bf16, 3.5 GB)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where both sides compute (default: cpu)")
    parser.add_argument("--tokenizer", metavar="DIR",
                        help=f"tokenizer for --make-qwen2-0.5b and --make-deepseek-1.5b (default: {QWEN_TOKENIZER})")
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="bf16",
                        help="weight dtype, both sides (default: bf16, as the notebook)")
    parser.add_argument("--threads", type=int, default=1, help="compute threads, both sides (default: 1)")
    parser.add_argument("--python", metavar="PYTHON", default=os.environ.get(PYTHON_VARIABLE),
                        help=f"interpreter with torch and transformers for the notebook side "
                             f"(default: ${PYTHON_VARIABLE}, else this interpreter)")
    parser.add_argument("--bench", metavar="PATH", default=os.environ.get(BENCH_VARIABLE) or str(DEFAULT_BENCH),
                        help=f"tstar's bench binary (default: ${BENCH_VARIABLE}, else build/bench/bench)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs of each side, alternating; the least process wall time is kept (default: 1)")
    parser.add_argument("--bench-arg", action="append", default=[], metavar="ARG",
                        help="extra argument for bench (repeatable), e.g. --bench-arg=--logits-dtype=model")
    parser.add_argument("--verbose", action="store_true", help="echo both sides' output to stderr")
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child is not None:   # internal: the notebook side, in the interpreter with torch
        child = argparse.ArgumentParser(prog="notebook_speed --child")
        child.add_argument("what", choices=("notebook", "make-qwen"))
        child.add_argument("directory", nargs="?")
        child.add_argument("--model")
        child.add_argument("--dtype")
        child.add_argument("--threads", type=int)
        child.add_argument("--shape", choices=sorted(SHAPES), default="qwen2.5-0.5b")
        child.add_argument("--device", default="cpu")
        c = child.parse_args(args.child)
        if c.what == "make-qwen":
            child_make_qwen(c.directory, c.shape, c.device)
        else:
            child_notebook(c.model, c.dtype, c.threads, c.device)
        return

    if args.threads < 1:
        parser.error("--threads must be at least 1")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if sum(bool(x) for x in (args.make_qwen2_05b, args.make_deepseek_15b, args.model)) > 1:
        parser.error("give --model, --make-qwen2-0.5b or --make-deepseek-1.5b, not both")
    named = bool(args.python)
    args.python = args.python or sys.executable
    args.python = check_python(args.python)
    if not (os.path.isfile(args.bench) and os.access(args.bench, os.X_OK)):
        fail(f"{args.bench}: no bench binary (build it, or give --bench PATH or ${BENCH_VARIABLE})")
    if args.make_qwen2_05b:
        args.model = make_qwen(args, named, args.make_qwen2_05b, "qwen2.5-0.5b")
    if args.make_deepseek_15b:
        args.model = make_qwen(args, named, args.make_deepseek_15b, "deepseek-r1-distill-qwen-1.5b")
    args.model = (args.model or DEFAULT_MODEL).resolve()
    if not (args.model / "config.json").exists():
        fail(f"{args.model}: no config.json (an HF checkpoint directory is needed)")

    notebook_runs, bench_runs = [], []
    for _ in range(args.repeats):
        notebook_runs.append(run_notebook(args, named))
        bench_runs.append(run_bench(args))
    nb, ts = best_of(notebook_runs), best_of(bench_runs)

    print(f"model {args.model}, {args.dtype}, {args.device}, {args.threads} thread(s), CPU {cpu_model()}; notebook: torch "
          f"{nb['torch']}, transformers {nb['transformers']}, eager; tstar: bench --compute native --seeds 1"
          + (f"; best of {args.repeats}" if args.repeats > 1 else ""))
    print(table(nb, ts))
    exp_nb = sum(nb["times"][k] for k, _, _ in EXPERIMENTS)
    exp_ts = sum(ts["times"][k] for k, _, _ in EXPERIMENTS)
    summary = {
        "model": str(args.model), "dtype": args.dtype, "device": args.device, "threads": args.threads,
        "cpu": cpu_model(),
        "repeats": args.repeats,
        "notebook": {"process_wall_s": nb["process_wall_s"], **nb["times"], "torch": nb["torch"],
                     "transformers": nb["transformers"], "python": args.python},
        "tstar": {"process_wall_s": ts["process_wall_s"], **ts["times"], "benchmarks": ts["benchmarks"],
                  "command": ts["command"]},
        "ratio": {**{key: ratio(nb["times"][key], ts["times"][key]) for key, _, _ in EXPERIMENTS},
                  "experiments": ratio(exp_nb, exp_ts),
                  "process_wall": ratio(nb["process_wall_s"], ts["process_wall_s"])},
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
