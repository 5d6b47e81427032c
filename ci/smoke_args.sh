# The smoke suite's bench arguments, shared by ci/smoke.sh and the Slurm test (tests/slurm/): every
# experiment family (bench --list-families) plus the model-free Synthetic check; 2 seeds x 3 scales,
# one detail scale, 5 repetitions of every timing, each timing a real cycle of the benchmark's unit
# of work (--timing cycles: the dashboard's throughput series). Changing these arguments changes the
# statistics: update the baseline (results/baseline/embedded-smoke) in the same commit.
#
#   source ci/smoke_args.sh; set_smoke_args BENCH_BINARY   # fills the array smoke_args
set_smoke_args() {
  local families
  families=$("$1" --list-families | paste -sd'|')
  smoke_args=(
    --compute reference --timing cycles
    --seeds 2 --scales 0,0.005,0.02 --detail-scales 0.02
    "--benchmark_filter=^($families|Synthetic/V:2000)/"
    --benchmark_repetitions=5 --benchmark_min_time=0.01
  )
}
