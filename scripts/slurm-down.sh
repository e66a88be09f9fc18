#!/usr/bin/env bash
# Stop the throwaway Slurm cluster started by scripts/slurm-up.sh.
#
# Stops exactly the daemons slurm-up.sh started -- slurmd, slurmctld,
# slurmdbd, mariadbd, munged -- through the pid files in the run folder
# (SIGTERM, wait, then SIGKILL after a timeout). Packages stay installed.
#   --purge   also delete the run folder (state, accounting DB, logs) and the
#             /etc/slurm symlinks that point into it.
# Harmless when nothing runs.
#
# Env: SLURM_RUN_DIR (default /var/tmp/hydra-sigopt-slurm),
#      SLURM_DOWN_TIMEOUT (seconds before SIGKILL, default 20).
set -euo pipefail

RUN_DIR="${SLURM_RUN_DIR:-/var/tmp/hydra-sigopt-slurm}"
TERM_TIMEOUT="${SLURM_DOWN_TIMEOUT:-20}"
PURGE=0

log() { printf '[%s] slurm-down: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

usage() { echo "usage: $0 [--purge]" >&2; exit 2; }

for arg in "$@"; do
  case $arg in
    --purge) PURGE=1 ;;
    -h|--help) usage ;;
    *) echo "unknown argument: $arg" >&2; usage ;;
  esac
done

[[ $(id -u) -eq 0 ]] || die "must run as root"

# stop_daemon NAME PIDFILE: only signal the pid if it is alive AND its command
# is NAME (or NAME-wlm, Debian's alternatives), so a stale pid file whose pid
# was reused by another process is never killed.
stop_daemon() {
  local name=$1 pidfile=$2 pid comm deadline
  if [[ ! -s $pidfile ]]; then
    log "$name: no pid file, not running"
    return 0
  fi
  pid=$(tr -dc '0-9' <"$pidfile")
  comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
  if [[ -z $pid ]] || ! kill -0 "$pid" 2>/dev/null || [[ $comm != "$name" && $comm != "$name-wlm" ]]; then
    log "$name: not running (stale pid file removed)"
    rm -f "$pidfile"
    return 0
  fi
  log "$name: SIGTERM to pid $pid"
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$(( $(date +%s) + TERM_TIMEOUT ))
  while kill -0 "$pid" 2>/dev/null; do
    if (( $(date +%s) >= deadline )); then
      log "$name: still alive after ${TERM_TIMEOUT}s, SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
      break
    fi
    sleep 0.2
  done
  rm -f "$pidfile"
  log "$name: stopped"
}

# Reverse start order: compute daemons first, databases and auth last (so
# slurmctld/slurmdbd can still flush to the DB while shutting down).
stop_daemon slurmd    "$RUN_DIR/pid/slurmd.pid"
stop_daemon slurmctld "$RUN_DIR/pid/slurmctld.pid"
stop_daemon slurmdbd  "$RUN_DIR/pid/slurmdbd.pid"
stop_daemon mariadbd  "$RUN_DIR/mysql/mysqld.pid"
stop_daemon munged    "$RUN_DIR/munge/munged.pid"

# Job steps still running when slurmd stops keep running under their own
# slurmstepd (that is how Slurm survives a slurmd restart: the next slurmd
# re-adopts them). slurmd chdirs into our log folder, so a slurmstepd whose cwd
# is in the run folder is one of ours. With --purge their spool is about to be
# deleted, so kill each one with all its descendants; otherwise just say so.
stepd_pids() {
  local p cwd
  for p in /proc/[0-9]*; do
    [[ $(cat "$p/comm" 2>/dev/null) == slurmstepd ]] || continue
    cwd=$(readlink "$p/cwd" 2>/dev/null) || continue
    [[ $cwd == "$RUN_DIR"/* ]] && echo "${p#/proc/}"
  done
  return 0
}

# Print PID and all its descendants (by walking the ppid links in /proc).
with_descendants() {
  local root=$1 child
  echo "$root"
  for child in $(ps -o pid= --ppid "$root" 2>/dev/null); do
    with_descendants "$child"
  done
}

mapfile -t STEPDS < <(stepd_pids)
if (( ${#STEPDS[@]} )); then
  if (( PURGE )); then
    mapfile -t TREE < <(for p in "${STEPDS[@]}"; do with_descendants "$p"; done)
    log "killing ${#STEPDS[@]} leftover job step(s): pids ${TREE[*]}"
    kill -TERM "${TREE[@]}" 2>/dev/null || true
    sleep 1
    kill -KILL "${TREE[@]}" 2>/dev/null || true
  else
    log "note: ${#STEPDS[@]} job step(s) still running (slurmstepd pids ${STEPDS[*]});" \
        "slurmd re-adopts them on the next slurm-up.sh, --purge kills them"
  fi
fi

if (( PURGE )); then
  for f in /etc/slurm/slurm.conf /etc/slurm/slurmdbd.conf; do
    if [[ -L $f && $(readlink "$f") == "$RUN_DIR"/* ]]; then
      rm -f "$f"
      # Put back what slurm-up.sh moved aside, if anything.
      if [[ -e $f.orig ]]; then mv -f "$f.orig" "$f"; fi
    fi
  done
  if [[ -d $RUN_DIR ]]; then
    log "removing $RUN_DIR"
    rm -rf -- "$RUN_DIR"
  fi
fi
log "done"
