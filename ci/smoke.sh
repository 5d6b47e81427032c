#!/usr/bin/env bash
# CI's smoke suite and statistics gate. Runs a small version of every experiment family (plus the
# model-free Synthetic checks) on the embedded model under the reference compute profile and compares
# it with the committed baseline in results/baseline/embedded-smoke/: every statistic must be
# bit-identical (the reproducibility gate), on any x86-64-v3 CPU, whichever recorded the baseline;
# times are reported, never gated (CI machines differ and are noisy). Also writes the run's report.
#
#   bash ci/smoke.sh                    run, compare, report (exit 1 when a statistic changed)
#   bash ci/smoke.sh --update-baseline  run and make this run the new baseline (commit it)
#
# Assumes a build in ${TSTAR_BUILD_DIR:-build} (ci/test.sh makes it).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${TSTAR_BUILD_DIR:-build}
python=${TSTAR_PYTHON:-/usr/bin/python3}  # Debian's, which has python3-matplotlib
baseline=results/baseline/embedded-smoke

source ci/smoke_args.sh
smoke_args=()
set_smoke_args "$build_dir/bench/bench"

mkdir -p results/runs
run_root=$(mktemp -d results/runs/smoke.XXXXXX)
"$build_dir/bench/bench" --results "$run_root" "${smoke_args[@]}" > "$run_root/console.txt" 2>&1
run_dir=$(find "$run_root" -mindepth 1 -maxdepth 1 -type d | head -n 1)
[[ -f "$run_dir/results.json" && -f "$run_dir/benchmark.json" ]] || {
  echo "ci/smoke.sh: bench left no results in $run_root (see $run_root/console.txt)" >&2
  exit 1
}

if [[ "${1:-}" == "--update-baseline" ]]; then
  rm -rf "$baseline"
  mkdir -p "$baseline"
  cp "$run_dir/benchmark.json" "$run_dir/results.json" "$baseline/"
  echo "ci/smoke.sh: baseline updated from $run_dir"
  exit 0
fi

"$python" ci/report "$run_dir" > /dev/null
echo "ci/smoke.sh: report in $run_dir/report/summary.md"
# The dashboard of the committed history plus this run (results/history itself is left alone).
history=$(mktemp -d)
cp results/history/*.json "$history/" 2>/dev/null || true
"$python" ci/record "$run_dir" --history "$history" --label "ci/smoke.sh" > /dev/null
"$python" ci/dashboard --history "$history" --out "$run_dir/dashboard.html" > /dev/null
rm -rf "$history"
echo "ci/smoke.sh: dashboard in $run_dir/dashboard.html"
status=0
"$python" ci/compare "$baseline" "$run_dir" --no-time-gate --markdown "$run_dir/compare.md" || status=$?
if ((status == 1)); then
  echo "ci/smoke.sh: statistics differ from $baseline (table above; $run_dir/compare.md)" >&2
fi
exit "$status"
