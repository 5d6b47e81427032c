#!/usr/bin/env bash
# Submits a bench run as a Slurm job array of N shards plus the merge job that runs when all of them
# succeeded (--dependency=afterok). Prints the two job ids ("ARRAY_ID MERGE_ID").
#
#   ci/slurm/submit.sh --shards N --root DIR [--gpu] [--build BUILD_DIR] [-- SBATCH_OPTION...] -- BENCH_ARGS...
#
# DIR must be visible to every node (shared file system); the results end up in DIR/merged/ and the
# logs in DIR/logs/. Rerunning the same command after a failure resubmits the array: every task
# reuses the units its earlier attempt finished. Extra sbatch options (partition, time, account)
# go between the first and the second "--"; the bench arguments (the run's settings) after the last.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$here/../.." && pwd)/build
shards="" root="" gres=() sbatch_extra=()
while (($#)); do
  case "$1" in
    --shards) shards=$2; shift 2 ;;
    --root) root=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --gpu) gres=(--gres=gpu:1); shift ;;
    --) shift
        # sbatch options up to a second "--", if there is one
        if printf '%s\n' "$@" | grep -qx -- '--'; then
          while [[ "$1" != "--" ]]; do sbatch_extra+=("$1"); shift; done
          shift
        fi
        break ;;
    *) echo "ci/slurm/submit.sh: unknown argument '$1' (see the comment at its top)" >&2; exit 2 ;;
  esac
done
[[ "$shards" =~ ^[1-9][0-9]*$ ]] || { echo "ci/slurm/submit.sh: --shards N (N >= 1) is required" >&2; exit 2; }
[[ -n "$root" ]] || { echo "ci/slurm/submit.sh: --root DIR is required" >&2; exit 2; }
mkdir -p "$root/logs"
root=$(cd "$root" && pwd)
export TSTAR_BENCH="$build/bench/bench" TSTAR_TOOL="$build/apps/tstar" TSTAR_RUN_ROOT="$root" TSTAR_SHARDS="$shards"
for binary in "$TSTAR_BENCH" "$TSTAR_TOOL"; do
  [[ -x "$binary" ]] || { echo "ci/slurm/submit.sh: $binary is not built (--build DIR)" >&2; exit 2; }
done
array_id=$(sbatch --parsable --export=ALL --array="0-$((shards - 1))" "${gres[@]}" "${sbatch_extra[@]}" \
  --output="$root/logs/tstar-shard_%A_%a.out" "$here/shard.sbatch" "$@")
array_id=${array_id%%;*}
merge_id=$(sbatch --parsable --export=ALL --dependency="afterok:$array_id" --kill-on-invalid-dep=yes \
  "${sbatch_extra[@]}" --output="$root/logs/tstar-merge_%j.out" "$here/merge.sbatch")
merge_id=${merge_id%%;*}
echo "$array_id $merge_id"
