#!/usr/bin/env bash
# Stop or start only slurmctld of the cluster started by scripts/slurm-up.sh, as a controller
# restart, failover or outage does on a real cluster: jobs keep running on the node (slurmd and
# its steps stay up) and the controller finds them again from its saved state when it is back.
#
#   bash scripts/slurm-controller.sh stop    # SIGTERM, wait until it is gone (SIGKILL after 20 s)
#   bash scripts/slurm-controller.sh start   # start it and wait until `scontrol ping` says UP
#
# Used by the tests of controller outages (tests/test_slurm_faults.py).
# Env: SLURM_RUN_DIR (default /var/tmp/hydra-sigopt-slurm), SLURM_UP_TIMEOUT (seconds, default 90).
set -euo pipefail

RUN_DIR="${SLURM_RUN_DIR:-/var/tmp/hydra-sigopt-slurm}"
PID_FILE="$RUN_DIR/pid/slurmctld.pid"
WAIT_TIMEOUT="${SLURM_UP_TIMEOUT:-90}"

log() { printf '[%s] slurm-controller: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

running_pid() {
  local pid
  [[ -s $PID_FILE ]] || return 1
  pid=$(tr -dc '0-9' <"$PID_FILE")
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
  [[ $(cat "/proc/$pid/comm" 2>/dev/null) == slurmctld* ]] || return 1
  echo "$pid"
}

stop() {
  local pid i
  pid=$(running_pid) || { log "slurmctld is not running"; return 0; }
  kill -TERM "$pid"
  for (( i = 0; i < 100; i++ )); do
    kill -0 "$pid" 2>/dev/null || { log "slurmctld (pid $pid) stopped"; return 0; }
    sleep 0.2
  done
  kill -KILL "$pid" 2>/dev/null || true
  log "slurmctld (pid $pid) killed"
}

start() {
  local i
  if running_pid >/dev/null; then
    log "slurmctld already running"
  else
    rm -f "$PID_FILE"
    /usr/sbin/slurmctld
  fi
  for (( i = 0; i < WAIT_TIMEOUT; i++ )); do
    if scontrol ping 2>/dev/null | grep -q UP; then
      log "slurmctld is up"
      return 0
    fi
    sleep 1
  done
  log "ERROR: slurmctld did not answer within ${WAIT_TIMEOUT}s"
  tail -20 "$RUN_DIR/log/slurmctld.log" >&2 || true
  exit 1
}

case "${1:-}" in
  stop) stop ;;
  start) start ;;
  *) echo "usage: $0 stop|start" >&2; exit 2 ;;
esac
