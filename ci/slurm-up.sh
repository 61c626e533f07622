#!/usr/bin/env bash
# ci/slurm-up.sh: a real one-node Slurm cluster on this machine (Debian's slurm-wlm + munge), for the tests marked
# `slurm` and as the recipe of docs/scale.md ("A test cluster on one box").
#
#   ci/slurm-up.sh        # install (apt, as root), configure, start munged + slurmctld + slurmd, wait for "idle"
#   ci/slurm-down.sh      # stop the daemons this script started (by their pid files)
#
# The configuration is a small cluster's: this machine is the controller and the only node (its line from
# `slurmd -C`), no GPUs (no gres), accounting off (AccountingStorageType=accounting_storage/none: `sacct` answers
# nothing), proctrack/linuxproc and task/none (no cgroups, no CPU binding), SlurmUser=root. Two settings are short
# for the tests' sake only: SlurmdTimeout=20 (a node whose slurmd is gone is DOWN after ~20 s instead of 300 s) and
# KillWait=5 (SIGTERM to SIGKILL). The daemons run without systemd, their files under $NTIREKIT_SLURM_DIR
# (default /var/tmp/ntirekit-slurm): state, spool, logs, pid files, and `started` (the daemons started here).
#
# Where the cluster cannot be had (not root, no apt-get, the packages cannot be installed, another Slurm
# configuration is already in /etc/slurm) it says so in one line and exits 0: the `slurm` tests then skip.
set -euo pipefail

DIR="${NTIREKIT_SLURM_DIR:-/var/tmp/ntirekit-slurm}"
CONF=/etc/slurm/slurm.conf
MARK="# written by ntirekit ci/slurm-up.sh"
WAIT_S="${NTIREKIT_SLURM_WAIT_S:-60}"

skip() { echo "slurm-up: $*; the slurm tests will be skipped" >&2; exit 0; }
answers() { timeout 10 sinfo -h -o %T >/dev/null 2>&1; }

if command -v sinfo >/dev/null && [ -f "$CONF" ] && answers; then
  if grep -qF "$MARK" "$CONF"; then echo "slurm-up: the cluster is already up (sinfo answers)"; exit 0; fi
  skip "a Slurm cluster configured elsewhere already answers here: not touching it"
fi
if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
  skip "$CONF exists and was not written by this script: not touching it"
fi
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    skip "Slurm is not installed and cannot be here (it needs root and apt-get: apt-get install slurm-wlm munge)"
  fi
  log="${TMPDIR:-/tmp}/ntirekit-slurm-apt.log"
  { apt-get update -qq \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge; } >"$log" 2>&1 \
    || skip "apt-get install slurm-wlm munge failed (see $log)"
fi
[ "$(id -u)" = 0 ] || skip "the daemons need root (slurmd runs jobs as their users)"

mkdir -p "$DIR/state" "$DIR/spool" /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
chmod 0755 /run/munge
: >>"$DIR/started"

# munge: the credentials every Slurm message carries (the key comes with the package)
if ! timeout 5 munge -n 2>/dev/null | timeout 5 unmunge >/dev/null 2>&1; then
  if [ ! -f /etc/munge/munge.key ]; then
    mungekey --create --keyfile=/etc/munge/munge.key && chown munge:munge /etc/munge/munge.key
  fi
  runuser -u munge -- munged --pid-file=/run/munge/munged.pid
  echo "munged /run/munge/munged.pid" >>"$DIR/started"
fi

node_line=$(slurmd -C | head -n 1)            # NodeName=<host> CPUs=.. Boards=.. ... RealMemory=..
node=$(sed -E 's/^NodeName=([^ ]+).*/\1/' <<<"$node_line")
mkdir -p /etc/slurm
cat >"$CONF" <<EOF
$MARK: a one-node test cluster ($(date -u +%Y-%m-%dT%H:%M:%SZ))
ClusterName=ntirekit-ci
SlurmctldHost=$node
SlurmUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
SlurmdTimeout=20
KillWait=5
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
$node_line
PartitionName=ci Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF

if ! answers; then
  slurmctld -i                                 # -i: ignore a state file left by an earlier cluster
  echo "slurmctld $DIR/slurmctld.pid" >>"$DIR/started"
fi
if ! [ -f "$DIR/slurmd.pid" ] || ! kill -0 "$(cat "$DIR/slurmd.pid")" 2>/dev/null; then
  slurmd
  echo "slurmd $DIR/slurmd.pid" >>"$DIR/started"
fi

for _ in $(seq "$WAIT_S"); do
  state=$(timeout 10 sinfo -h -n "$node" -o %T 2>/dev/null || true)
  if [ "$state" = idle ]; then
    echo "slurm-up: node $node idle ($(sed -E 's/^NodeName=[^ ]+ //' <<<"$node_line")); logs and pid files in $DIR"
    exit 0
  fi
  sleep 1
done
echo "slurm-up: node $node not idle after ${WAIT_S} s (state: ${state:-no answer});" \
     "see $DIR/slurmctld.log and $DIR/slurmd.log" >&2
exit 1
