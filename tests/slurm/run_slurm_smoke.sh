#!/usr/bin/env bash
# A real Slurm on this machine: starts munged, slurmctld and slurmd from Debian's packages
# (slurm-wlm, munge; ci/setup.sh installs them), configured for localhost only in a private
# directory, submits the smoke suite as a 3-task array plus its merge through ci/slurm/submit.sh,
# waits, checks that the merged statistics equal the committed smoke baseline bit for bit
# (ci/compare on benchmark.json, and results.json's "results"), and shuts the daemons down.
#
#   tests/slurm/run_slurm_smoke.sh SOURCE_DIR BUILD_DIR
#
# Exit 77 (ctest: skipped) only when the Slurm or munge programs are not installed.
set -euo pipefail
source_dir=$(cd "$1" && pwd)
build_dir=$(cd "$2" && pwd)
python=${TSTAR_PYTHON:-/usr/bin/python3}
for program in munged mungekey slurmctld slurmd sbatch scontrol; do
  if ! command -v "$program" > /dev/null && [[ ! -x /usr/sbin/$program ]]; then
    echo "SKIP: $program is not installed (Debian packages slurmctld, slurmd, slurm-client, munge; ci/setup.sh installs them)"
    exit 77
  fi
done
export PATH="$PATH:/usr/sbin"
start=$(date +%s)

work=$(mktemp -d "${TMPDIR:-/tmp}/tstar-slurm.XXXXXX")
pids=()
shutdown() {
  local status=$?
  scancel --quiet --full --signal=KILL --user="$(id -un)" 2> /dev/null || true
  for pid in "${pids[@]}"; do kill "$pid" 2> /dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2> /dev/null || true; done
  if ((status != 0)); then
    for log in "$work"/*.log "$work"/run/logs/*.out; do
      [[ -f "$log" ]] && { echo "---- $log"; tail -n 30 "$log"; }
    done
  fi
  rm -rf "$work"
  exit "$status"
}
trap shutdown EXIT

# Free TCP ports for slurmctld and slurmd (chosen by the kernel, so parallel runs do not collide).
read -r ctld_port slurmd_port < <("$python" -c '
import socket
ports = []
sockets = []
for _ in range(2):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); sockets.append(s); ports.append(s.getsockname()[1])
print(*ports)')

user=$(id -un)
mkdir -p "$work/state" "$work/spool" "$work/run"
chmod 700 "$work"
mungekey --create --keyfile="$work/munge.key" 2> /dev/null
chmod 600 "$work/munge.key"
munged --force --key-file="$work/munge.key" --socket="$work/munge.socket" --pid-file="$work/munged.pid" \
  --log-file="$work/munged.log" --seed-file="$work/munge.seed" --foreground &
pids+=($!)

cat > "$work/slurm.conf" <<EOF
ClusterName=tstar-test
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=$user
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$work/munge.socket
CredType=cred/munge
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MinJobAge=600
NodeName=tstar-node NodeHostname=$(hostname) NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=tstar Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
export SLURM_CONF="$work/slurm.conf"
for ((i = 0; i < 50; i++)); do [[ -S "$work/munge.socket" ]] && break; sleep 0.1; done
slurmctld -D -i -f "$SLURM_CONF" > "$work/slurmctld.out" 2>&1 &
pids+=($!)
slurmd -D -N tstar-node -f "$SLURM_CONF" > "$work/slurmd.out" 2>&1 &
pids+=($!)
for ((i = 0; i < 100; i++)); do
  scontrol show node tstar-node 2> /dev/null | grep -Eq 'State=(IDLE|MIXED)' && break
  sleep 0.2
done
scontrol show node tstar-node | grep -E 'State=(IDLE|MIXED)' > /dev/null || { echo "slurmd did not come up" >&2; exit 1; }
echo "slurm up after $(($(date +%s) - start)) s"

source "$source_dir/ci/smoke_args.sh"
smoke_args=()
set_smoke_args "$build_dir/bench/bench"
read -r array_id merge_id < <(cd "$source_dir" && ci/slurm/submit.sh --shards 3 --root "$work/run" \
  --build "$build_dir" -- "${smoke_args[@]}")
echo "submitted array job $array_id and merge job $merge_id"
state=""
for ((i = 0; i < 600; i++)); do
  state=$(scontrol show job "$merge_id" 2> /dev/null | grep -o 'JobState=[A-Z_]*' | head -n 1 | cut -d= -f2)
  [[ "$state" =~ ^(COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY)$ ]] && break
  sleep 0.5
done
echo "merge job $merge_id: ${state:-unknown} after $(($(date +%s) - start)) s"
[[ "$state" == COMPLETED ]] || { scontrol show job "$array_id" >&2 || true; exit 1; }

merged="$work/run/merged"
"$python" "$source_dir/ci/compare" "$source_dir/results/baseline/embedded-smoke" "$merged" --no-time-gate
"$python" - "$source_dir/results/baseline/embedded-smoke/results.json" "$merged/results.json" <<'PY'
import json, sys
base, merged_run = (json.load(open(path)) for path in sys.argv[1:])
sources = {shard["source"] for shard in merged_run["provenance"]["shards"]}
if sources != {"SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT"}:
    sys.exit(f"the shards were not chosen by the Slurm array: {sources}")
base, merged = base["results"], merged_run["results"]
if json.dumps(base, sort_keys=True) != json.dumps(merged, sort_keys=True):
    differing = [k for k in sorted(set(base) | set(merged)) if base.get(k) != merged.get(k)]
    sys.exit(f"results.json statistics differ from the baseline: {differing}")
print(f"results.json: {len(base)} results identical to the baseline")
PY
echo "slurm smoke test passed in $(($(date +%s) - start)) s"
