# shellcheck shell=bash disable=SC2034
# Shared helpers for the runners/*.sh service scripts (sourced, not executed).
#
# Every service runs in its own session (setsid), so Ctrl-C in the terminal that started it
# does not reach it; its pid is recorded in .local/pids/<name>.pid, its output goes to
# .local/logs/<name>.log, and it is stopped only through that recorded pid.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL="$ROOT/.local"
PIDS="$LOCAL/pids"
LOGS="$LOCAL/logs"
JARS="$ROOT/.cache/jars"
VENV_PYTHON="${VENV_PYTHON:-$ROOT/.venv/bin/python}"
JAVA="${JAVA:-java}"
mkdir -p "$PIDS" "$LOGS"

log() { echo "$(basename "$0"): $*" >&2; }
die() { log "$*"; exit 1; }

pid_of() { # name -> pid of a live recorded process, else nothing
  local f="$PIDS/$1.pid" pid
  [[ -f "$f" ]] || return 1
  pid="$(cat "$f")"
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    echo "$pid"
  else
    rm -f "$f"
    return 1
  fi
}

start_daemon() { # name command... ; starts it detached, records its pid
  local name="$1"; shift
  if pid_of "$name" >/dev/null; then
    log "$name already running (pid $(pid_of "$name"))"
    return 0
  fi
  echo "=== $(date -u +%FT%TZ) starting: $*" >> "$LOGS/$name.log"
  setsid "$@" >> "$LOGS/$name.log" 2>&1 < /dev/null &
  echo $! > "$PIDS/$name.pid"
}

stop_daemon() { # name [timeout_s]; SIGTERM, then SIGKILL after the timeout
  local name="$1" timeout="${2:-20}" pid deadline
  pid="$(pid_of "$name")" || { log "$name not running"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + timeout))
  while kill -0 "$pid" 2>/dev/null; do
    if (( SECONDS >= deadline )); then
      log "$name (pid $pid) did not stop in ${timeout}s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  rm -f "$PIDS/$name.pid"
  log "$name stopped (pid $pid)"
}

port_open() { # host port
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

wait_until() { # name timeout_s check-command... ; fails if the process dies or time runs out
  local name="$1" timeout="$2"; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@"; do
    if ! pid_of "$name" >/dev/null; then
      log "$name exited during startup; last lines of $LOGS/$name.log:"
      tail -n 30 "$LOGS/$name.log" >&2
      return 1
    fi
    if (( SECONDS >= deadline )); then
      log "$name not ready after ${timeout}s; last lines of $LOGS/$name.log:"
      tail -n 30 "$LOGS/$name.log" >&2
      return 1
    fi
    sleep 0.5
  done
}

port_free_or_die() { # host port what
  if port_open "$1" "$2"; then
    die "port $1:$2 for $3 is already in use by another process"
  fi
}

report_status() { # name address ; prints whether the recorded process runs, exits 1 when not
  local pid
  if pid="$(pid_of "$1")"; then
    echo "$1 running on $2 (pid $pid)"
  else
    echo "$1 not running"
    return 1
  fi
}
