#!/usr/bin/env bash
# Starts a single-node Slurm cluster on this machine for the integration tests (run as root).
#
# Installs slurmctld, slurmd, the client tools and munge when `sbatch` is missing, starts munged,
# slurmctld and slurmd by hand (no systemd), and waits until the node is IDLE. Safe to run again:
# running daemons are stopped (and awaited) before new ones start.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

log() { printf 'start-slurm: %s\n' "$*"; }
die() { printf 'start-slurm: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root"

if ! command -v sbatch >/dev/null || ! command -v slurmctld >/dev/null \
  || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  log "installing slurm and munge"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi

# Waits up to 15 s for the pids to exit, then kills them.
stop_pids() {
  local pids=("$@") i
  [ ${#pids[@]} -gt 0 ] || return 0
  kill "${pids[@]}" 2>/dev/null || true
  for i in $(seq 1 150); do
    local alive=0 p
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive -eq 0 ] && return 0
    sleep 0.1
  done
  kill -9 "${pids[@]}" 2>/dev/null || true
  sleep 0.5
}

# Pids of the processes whose name is exactly $1 (a minimal image may lack pgrep).
pids_named() {
  local f
  for f in /proc/[0-9]*/comm; do
    if [ "$(cat "$f" 2>/dev/null)" = "$1" ]; then f="${f#/proc/}"; echo "${f%/comm}"; fi
  done
}

log "stopping old daemons"
mapfile -t old < <(pids_named slurmd; pids_named slurmctld)
stop_pids "${old[@]}"

# munge: a key, a fresh socket folder (tmpfs, gone after a reboot), the daemon as the munge user.
if [ ! -s /etc/munge/munge.key ]; then
  log "creating a munge key"
  mkdir -p /etc/munge
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
fi
chown munge:munge /etc/munge /etc/munge/munge.key
chmod 0700 /etc/munge
chmod 0400 /etc/munge/munge.key
mkdir -p /var/lib/munge /var/log/munge
chown munge:munge /var/lib/munge /var/log/munge
if [ -z "$(pids_named munged)" ] || ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  mapfile -t old < <(pids_named munged)
  stop_pids "${old[@]}"
  rm -rf /run/munge
  mkdir -p /run/munge
  chown munge:munge /run/munge
  chmod 0755 /run/munge
  log "starting munged"
  runuser -u munge -- munged --force
  for i in $(seq 1 50); do
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
    [ "$i" -eq 50 ] && die "munged does not answer"
    sleep 0.1
  done
fi

mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cp "$here/slurm.conf" /etc/slurm/slurm.conf

log "starting slurmctld and slurmd"
slurmctld
slurmd -N localhost

for i in $(seq 1 60); do
  state="$(timeout 5 scontrol show node localhost 2>/dev/null | sed -n 's/.*State=\([A-Z+_]*\).*/\1/p' | head -n1 || true)"
  case "$state" in
    IDLE*) log "node localhost is $state"; exit 0 ;;
    DOWN*|DRAIN*) timeout 5 scontrol update nodename=localhost state=resume 2>/dev/null || true ;;
  esac
  sleep 1
done
printf 'start-slurm: error: node localhost did not become IDLE within 60 s (state: %s)\n' "${state:-unknown}" >&2
tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 2>/dev/null || true
exit 1
