# Shared helpers for scripts/services/*: paths, pid files, ports, the Python venv.
# Sourced, not run. Callers set `set -euo pipefail` themselves.
# shellcheck disable=SC2034 # the variables below are used by the scripts that source this file

SERVICES_SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SERVICES_SCRIPTS/../.." && pwd)
CACHE_DIR=${SLUICE_CACHE_DIR:-$ROOT/.cache}
STATE_ROOT=${SLUICE_SERVICES_DIR:-$ROOT/target/services}
VENV=${SLUICE_VENV:-$CACHE_DIR/venv}
HOST=127.0.0.1

log() { printf '[%s] %s\n' "${SERVICE:-services}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# apt-get install, running `apt-get update` once per script run first.
APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "apt-get missing; install $* by hand"
  if [ "$APT_UPDATED" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

# A Python 3 interpreter to build the venv with (and for the stdlib-only helpers).
base_python() {
  if ! command -v python3 >/dev/null 2>&1; then
    apt_install python3 python3-venv
  fi
  # The real interpreter, not a wrapper such as a pyenv shim (so pids and command lines are its own).
  if [ -z "${BASE_PYTHON:-}" ]; then
    BASE_PYTHON=$(python3 -c 'import sys; print(sys.executable)')
  fi
  echo "$BASE_PYTHON"
}

# Make sure the venv exists and has the given pip requirements. A stamp file lists the
# requirements installed so far, one a line, so a warm run asks pip nothing.
ensure_venv() {
  local py req stamp missing=()
  stamp="$VENV/.sluice-requirements"
  for req in "$@"; do
    if ! [ -x "$VENV/bin/python" ] || ! [ -f "$stamp" ] || ! grep -qxF -- "$req" "$stamp"; then
      missing+=("$req")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  py=$(base_python)
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating venv $VENV"
    mkdir -p "$(dirname "$VENV")"
    if ! "$py" -m venv "$VENV" >&2 2>/dev/null; then
      rm -rf "$VENV"
      apt_install python3-venv
      "$py" -m venv "$VENV" >&2
    fi
  fi
  log "pip install ${missing[*]}"
  PIP_CACHE_DIR="$CACHE_DIR/pip" "$VENV/bin/python" -m pip install -q "${missing[@]}" >&2
  printf '%s\n' "${missing[@]}" >>"$stamp"
}

# True when something accepts TCP connections on $HOST:$1.
port_open() {
  (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

# Pid from a pid file when that process is alive and its command line contains $2.
live_pid() {
  local file=$1 marker=$2 pid cmd
  [ -f "$file" ] || return 1
  pid=$(cat "$file" 2>/dev/null || true)
  [ -n "$pid" ] && alive "$pid" || return 1
  cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
  [[ $cmd == *"$marker"* ]] || return 1
  echo "$pid"
}

# TERM a pid, then KILL it if still alive after $2 seconds.
kill_pid() {
  local pid=$1 grace=${2:-15} i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < grace * 10; i++)); do
    alive "$pid" || return 0
    sleep 0.1
  done
  log "pid $pid still alive after ${grace}s; killing"
  kill -KILL "$pid" 2>/dev/null || true
}

# True while a process exists and is not a zombie.
alive() {
  [ -d "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null
}

# Stop the process named by a pid file and remove the file.
stop_pid() {
  local file=$1 marker=$2 grace=${3:-15} pid
  if pid=$(live_pid "$file" "$marker"); then
    log "stopping pid $pid"
    kill_pid "$pid" "$grace"
  fi
  rm -f "$file"
}

# Pids of processes whose program is $1 (a basename) and whose command line contains $2: our
# own servers left without a pid file (say after target/ was deleted).
orphans() {
  local prog=$1 marker=$2 p cmd
  for p in /proc/[0-9]*; do
    cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
    case "$cmd" in "$prog "* | */"$prog "*) ;; *) continue ;; esac
    [[ $cmd == *"$marker"* ]] && echo "${p#/proc/}"
  done
  return 0
}

kill_orphans() {
  local pid
  for pid in $(orphans "$1" "$2"); do
    log "killing stale pid $pid ($1)"
    kill_pid "$pid" 15
  done
}

# Run "$@" in the background in a session of its own (so it outlives the caller's terminal and
# job), stdin from /dev/null, stdout and stderr appended to $2. The child writes its pid to $1 and
# then execs the command, which so keeps that pid. Prints the pid.
daemonize() {
  local pidfile=$1 logfile=$2 i
  shift 2
  rm -f "$pidfile"
  # shellcheck disable=SC2016 # $$, $0 and $@ are the child's
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" </dev/null >>"$logfile" 2>&1 &
  for ((i = 0; i < 50; i++)); do [ -s "$pidfile" ] && break; sleep 0.1; done
  [ -s "$pidfile" ] || die "could not start $1"
  cat "$pidfile"
}

# Refuse to start when a port is taken by something that is not ours.
require_free_port() {
  local port=$1
  if port_open "$port"; then
    die "port $HOST:$port is already in use by another process ($(owner_of_port "$port")); set a different port in the environment"
  fi
}

owner_of_port() {
  if command -v ss >/dev/null 2>&1; then
    ss -ltnpH "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\(.*\)))/\1/p' | head -1
  fi
}

# Wait until `$@` succeeds, at most $TIMEOUT seconds, failing early when pid $PID dies.
wait_for() {
  local timeout=$1 pid=$2 what=$3 logfile=$4
  shift 4
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ! alive "$pid"; then
      log "process exited before $what; last lines of $logfile:"
      tail -n 40 "$logfile" >&2 || true
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "timed out after ${timeout}s waiting for $what; last lines of $logfile:"
      tail -n 40 "$logfile" >&2 || true
      return 1
    fi
    sleep 0.2
  done
}

# Metadata request against a Kafka-protocol broker (stdlib Python, no client needed).
kafka_ping() {
  "$(base_python)" "$SERVICES_SCRIPTS/kafka_ping.py" "$HOST:$1"
}
