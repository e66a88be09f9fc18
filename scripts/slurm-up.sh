#!/usr/bin/env bash
# Bring up a throwaway single-node Slurm cluster (with accounting) on a
# Debian-like machine, as root, without systemd.
#
# Why this exists: the sweeper's Slurm path (submitit -> sbatch/squeue/sacct/
# scancel) can only be tested against a real slurmctld. Containers here have no
# systemd and /usr/sbin/policy-rc.d blocks service starts, so every daemon is
# started by hand, with its pid file, logs and state in ONE run folder:
#
#   $SLURM_RUN_DIR (default /var/tmp/hydra-sigopt-slurm)
#     etc/     slurm.conf, slurmdbd.conf (symlinked from /etc/slurm so the
#              client tools work from any shell without SLURM_CONF)
#     log/     slurmctld.log slurmd.log slurmdbd.log (owned by the slurm user)
#     pid/     slurmctld.pid slurmd.pid slurmdbd.pid
#     state/   StateSaveLocation; spool/ SlurmdSpoolDir
#     munge/   munged.pid munged.log   (owned by munge)
#     mysql/   data/ + mysqld.{pid,sock,log} (owned by mysql), port 3307
#     jobs/    output of the smoke job
#
# Idempotent: a second run only starts what is not running (checked through
# the pid files) and never re-creates the MariaDB datadir or the munge key.
#
# Env: SLURM_RUN_DIR, SLURM_CPUS (default 8), SLURM_REAL_MEMORY (MB, 16000),
#      SLURM_CLUSTER_NAME (hydrasigopt), SLURM_UP_NO_SMOKE=1 (skip smoke job),
#      SLURM_UP_TIMEOUT (seconds to wait for each daemon, default 90).
set -euo pipefail

RUN_DIR="${SLURM_RUN_DIR:-/var/tmp/hydra-sigopt-slurm}"
CPUS="${SLURM_CPUS:-8}"
REAL_MEMORY="${SLURM_REAL_MEMORY:-16000}"
CLUSTER="${SLURM_CLUSTER_NAME:-hydrasigopt}"
WAIT_TIMEOUT="${SLURM_UP_TIMEOUT:-90}"
DB_PORT=3307
PACKAGES=(munge slurmctld slurmd slurm-client slurmdbd mariadb-server)

ETC_DIR="$RUN_DIR/etc"
LOG_DIR="$RUN_DIR/log"
PID_DIR="$RUN_DIR/pid"
STATE_DIR="$RUN_DIR/state"
SPOOL_DIR="$RUN_DIR/spool"
MUNGE_DIR="$RUN_DIR/munge"
MYSQL_DIR="$RUN_DIR/mysql"
MYSQL_DATA="$MYSQL_DIR/data"
MYSQL_SOCK="$MYSQL_DIR/mysqld.sock"
MYSQL_PID="$MYSQL_DIR/mysqld.pid"
MYSQL_LOG="$MYSQL_DIR/mysqld.log"
JOBS_DIR="$RUN_DIR/jobs"
DB_PASS_FILE="$RUN_DIR/db-password"

START_TS=$(date +%s)
NODE=$(hostname -s)

log() { printf '[%s] slurm-up: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Print the last lines of a log file to stderr (used when a daemon fails).
show_tail() {
  local f=$1
  if [[ -r $f ]]; then
    log "---- last lines of $f ----"
    tail -n 25 "$f" >&2 || true
    log "---- end of $f ----"
  else
    log "(no log at $f)"
  fi
}

# True if the pid file names a live process whose command is $2 (Debian runs
# slurmctld/slurmd through alternatives, so "<name>-wlm" counts too). Checking
# the command guards against a stale pid file whose pid got reused.
pid_alive() {
  local pidfile=$1 name=$2 pid comm
  [[ -s $pidfile ]] || return 1
  pid=$(tr -dc '0-9' <"$pidfile")
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
  comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
  [[ $comm == "$name" || $comm == "$name-wlm" ]]
}

# A daemon that is running with an outdated config (e.g. SLURM_CPUS changed:
# node definitions cannot be changed by "scontrol reconfigure") is stopped
# here and then started again by the normal start path. Running job steps
# survive a slurmd restart (the new slurmd re-adopts them).
stop_for_restart() {
  local pidfile=$1 name=$2 pid i
  pid_alive "$pidfile" "$name" || return 0
  pid=$(tr -dc '0-9' <"$pidfile")
  log "config changed: restarting $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for (( i = 0; i < 100; i++ )); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

# wait_until DESCRIPTION LOGFILE COMMAND...: poll COMMAND every second until it
# succeeds; after $WAIT_TIMEOUT seconds fail with the tail of LOGFILE.
wait_until() {
  local desc=$1 logfile=$2; shift 2
  local deadline=$(( $(date +%s) + WAIT_TIMEOUT ))
  until "$@" >/dev/null 2>&1; do
    if (( $(date +%s) >= deadline )); then
      show_tail "$logfile"
      die "timed out after ${WAIT_TIMEOUT}s waiting for: $desc"
    fi
    sleep 1
  done
}

check_prereqs() {
  [[ $(id -u) -eq 0 ]] || die "must run as root (it installs packages and starts system daemons)"
  command -v apt-get >/dev/null 2>&1 && command -v dpkg-query >/dev/null 2>&1 \
    || die "needs a Debian-like system with apt-get/dpkg (this one has none)"
}

install_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if (( ${#missing[@]} == 0 )); then
    log "packages already installed"
    return
  fi
  log "installing: ${missing[*]} (about a minute)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d stops the maintainer scripts from starting services; we start
  # the daemons ourselves below.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$RUN_DIR/apt-install.log" 2>&1 \
    || { show_tail "$RUN_DIR/apt-install.log"; die "apt-get install failed"; }
  log "packages installed"
}

# The slurm Debian packages create a system user "slurm"; fall back to root.
pick_slurm_user() {
  if id slurm >/dev/null 2>&1; then SLURM_USER=slurm; else SLURM_USER=root; fi
}

make_dirs() {
  mkdir -p "$RUN_DIR" "$ETC_DIR" "$LOG_DIR" "$PID_DIR" "$STATE_DIR" "$SPOOL_DIR" \
           "$MUNGE_DIR" "$MYSQL_DIR" "$JOBS_DIR"
  chmod 0755 "$RUN_DIR" "$ETC_DIR" "$SPOOL_DIR"
  # slurmctld/slurmdbd drop to SlurmUser and must write state, logs, pids.
  chown "$SLURM_USER:" "$LOG_DIR" "$PID_DIR" "$STATE_DIR"
  chmod 0755 "$LOG_DIR" "$PID_DIR" "$STATE_DIR"
  # munged refuses group/world-writable dirs for its pid and log files.
  chown munge:munge "$MUNGE_DIR"; chmod 0700 "$MUNGE_DIR"
  chown mysql:mysql "$MYSQL_DIR"; chmod 0750 "$MYSQL_DIR"
  # Jobs may be submitted by any user; outputs land here.
  chmod 1777 "$JOBS_DIR"
}

# ---------------------------------------------------------------- munge ----
start_munge() {
  if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating /etc/munge/munge.key"
    mkdir -p /etc/munge
    if command -v mungekey >/dev/null 2>&1; then
      mungekey --create --keyfile=/etc/munge/munge.key --force
    else
      dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
    fi
  fi
  chown munge:munge /etc/munge /etc/munge/munge.key
  chmod 0700 /etc/munge
  chmod 0400 /etc/munge/munge.key
  # /run is a tmpfs that is empty after a reboot; munged's socket lives here
  # (the default path that libmunge in every slurm tool looks at).
  mkdir -p /run/munge
  chown munge:munge /run/munge
  chmod 0755 /run/munge

  if pid_alive "$MUNGE_DIR/munged.pid" munged; then
    log "munged already running"
  else
    log "starting munged"
    rm -f "$MUNGE_DIR/munged.pid"
    runuser -u munge -- /usr/sbin/munged \
      --pid-file="$MUNGE_DIR/munged.pid" --log-file="$MUNGE_DIR/munged.log" \
      || { show_tail "$MUNGE_DIR/munged.log"; die "munged failed to start"; }
  fi
  wait_until "munge round trip" "$MUNGE_DIR/munged.log" sh -c 'munge -n | unmunge'
}

# -------------------------------------------------------------- mariadb ----
mysql_root() { mariadb --no-defaults --protocol=socket --socket="$MYSQL_SOCK" -uroot "$@"; }

start_mariadb() {
  if [[ ! -d $MYSQL_DATA/mysql ]]; then
    log "initialising MariaDB datadir $MYSQL_DATA"
    rm -rf "$MYSQL_DATA"
    mariadb-install-db --no-defaults --user=mysql --datadir="$MYSQL_DATA" \
      --auth-root-authentication-method=socket --skip-test-db \
      >"$MYSQL_DIR/install-db.log" 2>&1 \
      || { show_tail "$MYSQL_DIR/install-db.log"; die "mariadb-install-db failed"; }
  fi

  if pid_alive "$MYSQL_PID" mariadbd; then
    log "mariadbd already running"
  else
    log "starting mariadbd on 127.0.0.1:$DB_PORT"
    rm -f "$MYSQL_PID" "$MYSQL_SOCK"
    # Settings recommended by the Slurm accounting docs (buffer pool, lock
    # wait) so slurmdbd does not complain or time out on schema creation.
    setsid /usr/sbin/mariadbd --no-defaults --user=mysql \
      --datadir="$MYSQL_DATA" --socket="$MYSQL_SOCK" --pid-file="$MYSQL_PID" \
      --log-error="$MYSQL_LOG" --bind-address=127.0.0.1 --port="$DB_PORT" \
      --skip-name-resolve --innodb-buffer-pool-size=1G \
      --innodb-log-file-size=64M --innodb-lock-wait-timeout=900 \
      </dev/null >/dev/null 2>&1 &
  fi
  wait_until "mariadbd answering on $MYSQL_SOCK" "$MYSQL_LOG" mysql_root -e 'SELECT 1'

  if [[ ! -s $DB_PASS_FILE ]]; then
    (umask 077; head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$DB_PASS_FILE")
  fi
  DB_PASS=$(cat "$DB_PASS_FILE")
  # Re-applied every run: cheap, and keeps the password in sync with the file.
  mysql_root <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
SQL
}

# -------------------------------------------------------------- configs ----
# Write $2 to $1 only when the content changed, so a re-run does not touch
# mtimes (and we can tell whether running daemons need a reconfigure).
write_if_changed() {
  local dest=$1 content=$2
  if [[ -f $dest ]] && [[ "$(cat "$dest")" == "$content" ]]; then
    return 1
  fi
  printf '%s\n' "$content" >"$dest"
  return 0
}

# /etc/slurm/<name> -> run folder, so sbatch/squeue/sacct/scancel work from
# any shell (submitit calls them from Python subprocesses without env vars).
link_into_etc() {
  local name=$1
  mkdir -p /etc/slurm
  if [[ -e /etc/slurm/$name && ! -L /etc/slurm/$name ]]; then
    log "backing up existing /etc/slurm/$name to /etc/slurm/$name.orig"
    mv -f "/etc/slurm/$name" "/etc/slurm/$name.orig"
  fi
  ln -sfn "$ETC_DIR/$name" "/etc/slurm/$name"
}

write_configs() {
  local dbd slurm
  dbd="# Generated by scripts/slurm-up.sh -- throwaway single-node cluster.
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=$SLURM_USER
LogFile=$LOG_DIR/slurmdbd.log
PidFile=$PID_DIR/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db"

  slurm="# Generated by scripts/slurm-up.sh -- throwaway single-node cluster.
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=$SLURM_USER
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
SwitchType=switch/none
StateSaveLocation=$STATE_DIR
SlurmdSpoolDir=$SPOOL_DIR
SlurmctldPidFile=$PID_DIR/slurmctld.pid
SlurmdPidFile=$PID_DIR/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
# No cgroups in this container: track processes by parentage, no affinity.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
# Node comes back by itself after a restart; short timers for fast tests.
ReturnToService=2
KillWait=5
MinJobAge=30
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=5,bf_interval=5,batch_sched_delay=1
MailProg=/bin/true
# Advertise more CPUs than the 2-core machine has, without slurmd draining
# the node for the mismatch.
SlurmdParameters=config_overrides
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
JobCompType=jobcomp/none
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$REAL_MEMORY State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP"

  DBD_CONF_CHANGED=0 SLURM_CONF_CHANGED=0
  if write_if_changed "$ETC_DIR/slurmdbd.conf" "$dbd"; then DBD_CONF_CHANGED=1; fi
  # slurmdbd refuses a slurmdbd.conf that is not 0600 and owned by SlurmUser.
  chown "$SLURM_USER:" "$ETC_DIR/slurmdbd.conf"
  chmod 0600 "$ETC_DIR/slurmdbd.conf"
  if write_if_changed "$ETC_DIR/slurm.conf" "$slurm"; then SLURM_CONF_CHANGED=1; fi
  chmod 0644 "$ETC_DIR/slurm.conf"
  link_into_etc slurm.conf
  link_into_etc slurmdbd.conf
  if (( DBD_CONF_CHANGED || SLURM_CONF_CHANGED )); then
    log "wrote configs in $ETC_DIR"
  else
    log "configs unchanged"
  fi
}

# ---------------------------------------------------------------- slurm ----
start_slurmdbd() {
  if (( DBD_CONF_CHANGED )); then stop_for_restart "$PID_DIR/slurmdbd.pid" slurmdbd; fi
  if pid_alive "$PID_DIR/slurmdbd.pid" slurmdbd; then
    log "slurmdbd already running"
  else
    log "starting slurmdbd"
    rm -f "$PID_DIR/slurmdbd.pid"
    /usr/sbin/slurmdbd || { show_tail "$LOG_DIR/slurmdbd.log"; die "slurmdbd failed to start"; }
  fi
  # sacctmgr talks to slurmdbd, which talks to MariaDB: answers = both work.
  wait_until "slurmdbd answering (sacctmgr show cluster)" "$LOG_DIR/slurmdbd.log" \
    timeout 10 sacctmgr -n show cluster
  if ! timeout 10 sacctmgr -n -P show cluster format=cluster | grep -qx "$CLUSTER"; then
    log "registering cluster $CLUSTER in accounting"
    timeout 20 sacctmgr -i add cluster "$CLUSTER" >/dev/null
  fi
}

node_state() { sinfo -h -n "$NODE" -o '%T' 2>/dev/null | head -n1; }

node_is_idle() {
  local s
  s=$(node_state)
  [[ $s == idle || $s == mixed || $s == allocated ]]
}

start_slurmctld_slurmd() {
  if (( SLURM_CONF_CHANGED )); then
    stop_for_restart "$PID_DIR/slurmd.pid" slurmd
    stop_for_restart "$PID_DIR/slurmctld.pid" slurmctld
  fi
  if pid_alive "$PID_DIR/slurmctld.pid" slurmctld; then
    log "slurmctld already running"
  else
    log "starting slurmctld"
    rm -f "$PID_DIR/slurmctld.pid"
    # -i: ignore unreadable state files (e.g. after an unclean stop).
    /usr/sbin/slurmctld -i || { show_tail "$LOG_DIR/slurmctld.log"; die "slurmctld failed to start"; }
  fi
  wait_until "slurmctld answering (scontrol ping)" "$LOG_DIR/slurmctld.log" \
    sh -c 'scontrol ping | grep -q UP'

  if pid_alive "$PID_DIR/slurmd.pid" slurmd; then
    log "slurmd already running"
  else
    log "starting slurmd"
    rm -f "$PID_DIR/slurmd.pid"
    /usr/sbin/slurmd || { show_tail "$LOG_DIR/slurmd.log"; die "slurmd failed to start"; }
  fi

  local deadline=$(( $(date +%s) + WAIT_TIMEOUT )) s
  until node_is_idle; do
    s=$(node_state)
    case $s in
      down*|drain*|drained*|fail*)
        log "node $NODE is '$s': resuming it"
        scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true ;;
    esac
    if (( $(date +%s) >= deadline )); then
      show_tail "$LOG_DIR/slurmd.log"
      show_tail "$LOG_DIR/slurmctld.log"
      die "timed out after ${WAIT_TIMEOUT}s waiting for node $NODE to be idle (state: '${s:-unknown}')"
    fi
    sleep 1
  done
  wait_until "sacct answering" "$LOG_DIR/slurmdbd.log" sacct -n -X -S now-1hour
}

# ------------------------------------------------------------ smoke job ----
# The smoke job's state in sacct. A controller that died before saving its state hands out job ids
# again, and accounting keeps the earlier job of the same id (a CI run once read a CANCELLED job of
# a killed test run for its smoke job): only records submitted since the smoke job count.
smoke_state() {
  local id=$1 since=$2
  sacct -j "$id" -X -n -D -P -o Submit,State 2>/dev/null \
    | awk -F'|' -v since="$since" '$1 >= since { split($2, s, " "); state = s[1] } END { print state }'
}

smoke_job() {
  local out="$JOBS_DIR/smoke-%j.out" id state deadline since
  since=$(date -d '-2 seconds' +%Y-%m-%dT%H:%M:%S)
  id=$(sbatch --parsable -J slurm-up-smoke -t 1 -o "$out" --wrap 'echo ok') \
    || die "sbatch of the smoke job failed"
  id=${id%%;*}
  log "smoke job $id submitted, waiting for COMPLETED in sacct"
  deadline=$(( $(date +%s) + 60 ))
  while :; do
    state=$(smoke_state "$id" "$since")
    [[ $state == COMPLETED ]] && break
    case $state in
      FAILED|CANCELLED*|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE)
        show_tail "$LOG_DIR/slurmd.log"; die "smoke job $id ended $state" ;;
    esac
    if (( $(date +%s) >= deadline )); then
      squeue -j "$id" >&2 || true
      show_tail "$LOG_DIR/slurmctld.log"
      die "smoke job $id not COMPLETED in sacct after 60s (state: '${state:-none}')"
    fi
    sleep 1
  done
  grep -qx ok "$JOBS_DIR/smoke-$id.out" || die "smoke job output $JOBS_DIR/smoke-$id.out lacks 'ok'"
  rm -f "$JOBS_DIR/smoke-$id.out"
  log "smoke job $id COMPLETED"
}

main() {
  check_prereqs
  mkdir -p "$RUN_DIR"
  install_packages
  pick_slurm_user
  make_dirs
  start_munge
  start_mariadb
  write_configs
  start_slurmdbd
  start_slurmctld_slurmd
  if [[ ${SLURM_UP_NO_SMOKE:-0} == 1 ]]; then
    log "skipping smoke job (SLURM_UP_NO_SMOKE=1)"
  else
    smoke_job
  fi
  local cpus
  cpus=$(sinfo -h -n "$NODE" -o '%c' | head -n1)
  echo "slurm cluster up: node $NODE $(node_state), ${cpus} CPUs, accounting ok" \
       "(run dir $RUN_DIR, took $(( $(date +%s) - START_TS ))s)"
}

# Sourcing the script (as its test does) defines the functions without starting anything.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
