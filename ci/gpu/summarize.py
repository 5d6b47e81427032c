#!/usr/bin/env python3
"""The figures ci/gpu/check.sh reports, from bench's Google Benchmark JSON (standard library only).

    summarize.py protocol BENCH_JSON WALL_SECONDS   statistics time of the experiment families, and the
                                                    process wall time, against the 15 s target
    summarize.py throughput BENCH_JSON              NoiseBandwidth GB/s (bytes read + written) and each
                                                    phase's fraction of the copy measured in the same run
                                                    (target: inject_restore >= 0.80), Inject/Restore ms of
                                                    tstar and the notebook's algorithm, Forward/Decode
                                                    tokens/s
"""
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import tstar_results  # noqa: E402  (ci/)

EXPERIMENT_FAMILIES = ("WeightNoise", "Layer", "Evolution", "TempSweep")


def median_rate(run, counter):
    values = run.rates.get(counter)
    return statistics.median(values) if values else None


def protocol(path, wall):
    runs = tstar_results.load_benchmarks(path)
    failed = [name for name, run in runs.items() if run.errors]
    seconds = sum(sum(run.real_time_ns) * 1e-9 for run in runs.values() if run.family in EXPERIMENT_FAMILIES)
    count = sum(1 for run in runs.values() if run.family in EXPERIMENT_FAMILIES)
    print(f"protocol: {count} benchmarks, statistics {seconds:.2f} s, process wall {float(wall):.2f} s "
          f"(target < 15 s: {'met' if float(wall) < 15 else 'NOT met'})")
    for name in failed:
        print(f"protocol: FAILED {name}: {runs[name].errors[0]}")
    return 1 if failed or not count else 0


def throughput(path):
    runs = tstar_results.load_benchmarks(path)
    failed = [name for name, run in runs.items() if run.errors]
    copies = {}
    for name, run in runs.items():
        parts = name.split("/")
        if run.family == "NoiseBandwidth" and parts[3] == "copy":
            copies[tuple(parts[1:3])] = median_rate(run, "bytes_per_s")
    for name, run in runs.items():
        parts = name.split("/")
        if run.family == "NoiseBandwidth":
            rate = median_rate(run, "bytes_per_s")
            copy = copies.get(tuple(parts[1:3]))
            share = f", {rate / copy:.2f} of copy" if rate and copy else ""
            target = " (target >= 0.80)" if parts[3] == "inject_restore" else ""
            print(f"{'/'.join(parts[:4])}: {rate / 1e9:.1f} GB/s{share}{target}")
        elif run.family in ("Inject", "Restore"):
            print(f"{'/'.join(parts[:4])}: {run.median_time_ns() / 1e6:.3f} ms")
        elif run.family in ("Forward", "Decode"):
            print(f"{'/'.join(parts[:4] if run.family == 'Forward' else parts[:3])}: "
                  f"{median_rate(run, 'tokens_per_s'):.1f} tokens/s")
    for name in failed:
        print(f"throughput: FAILED {name}: {runs[name].errors[0]}")
    return 1 if failed else 0


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "protocol":
        return protocol(sys.argv[2], sys.argv[3])
    if len(sys.argv) == 3 and sys.argv[1] == "throughput":
        return throughput(sys.argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
