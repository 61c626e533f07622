#!/usr/bin/env bash
# ci/slurm-down.sh: stop the one-node cluster of ci/slurm-up.sh: cancel its jobs, then stop, by the pid files listed
# in $NTIREKIT_SLURM_DIR/started, the daemons that script started (slurmd, slurmctld, munged; nothing else), and
# remove the /etc/slurm/slurm.conf it wrote. Safe to run when nothing is up.
set -uo pipefail

DIR="${NTIREKIT_SLURM_DIR:-/var/tmp/ntirekit-slurm}"
CONF=/etc/slurm/slurm.conf
MARK="# written by ntirekit ci/slurm-up.sh"

[ -f "$DIR/started" ] || { echo "slurm-down: nothing started by ci/slurm-up.sh"; exit 0; }
if grep -q '^slurmctld ' "$DIR/started"; then
  jobs=$(timeout 10 squeue -h -o %i 2>/dev/null)
  if [ -n "$jobs" ]; then
    # shellcheck disable=SC2086
    timeout 10 scancel $jobs 2>/dev/null
    for _ in $(seq 15); do [ -z "$(timeout 10 squeue -h -o %i 2>/dev/null)" ] && break; sleep 1; done
  fi
fi
stopped=()
for daemon in slurmd slurmctld munged; do
  pid_file=$(awk -v d="$daemon" '$1 == d { f = $2 } END { print f }' "$DIR/started")
  if [ -z "$pid_file" ] || [ ! -f "$pid_file" ]; then continue; fi
  pid=$(cat "$pid_file")
  kill -TERM "$pid" 2>/dev/null || continue
  for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  stopped+=("$daemon ($pid)")
done
: >"$DIR/started"
[ -f "$CONF" ] && grep -qF "$MARK" "$CONF" && rm -f "$CONF"
echo "slurm-down: stopped ${stopped[*]:-nothing (already gone)}"
