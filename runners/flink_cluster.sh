#!/usr/bin/env bash
# Standalone Flink session cluster (one JobManager, two TaskManagers) from .cache/flink
# (runners/fetch_flink.sh), plus the EXTERNAL Beam Python worker pool beside the TaskManagers.
#
# The second TaskManager is a warm standby: jobs fit in one TaskManager's slots, and when the
# TaskManager running a job dies, Flink restarts the job at once in the standby's free slots
# instead of waiting for a replacement JVM to start and register (README "Guarantees").
# TaskManager i (1-based) is recorded as flink-taskmanager (i = 1) or flink-taskmanager-<i>,
# which is also its Flink resource id, so the REST API tells which process runs a job.
#
#   REST / web UI     http://localhost:$FLINK_REST_PORT (default 8081)
#   Python workers    localhost:$WORKER_POOL_PORT (default 50000): pipelines use
#                     --environment_type=EXTERNAL --environment_config=localhost:50000
#   checkpoints       .local/flink/checkpoints/<job id>/chk-<n> (3 kept, also after a cancel),
#   savepoints        .local/flink/savepoints (runners/savepoint.py)
#   conf / logs       .local/flink/conf (written from the distribution's conf at each start),
#                     .local/logs/flink-{jobmanager,taskmanager*}.log, .local/logs/worker-pool.log
#
# The Java side of Beam (runner, SDK harness for EMBEDDED KafkaIO, kafka-clients) is on the
# cluster's own classpath: FLINK_LIB_DIR is .local/flink/lib, Flink's lib plus the job server's
# classpath (runners/cluster_lib.py, made at each JobManager start), so a job submitted with
# runners/flink_options.py ships no jars (before: ~200 MB uploaded with every job, 18-25 s).
#
# Usage: runners/flink_cluster.sh start|stop|status
#        start also replaces any TaskManager or worker pool that is not running.
# Env:   FLINK_REST_PORT (8081), FLINK_TASKMANAGERS (2), FLINK_TASK_SLOTS (4) each,
#        FLINK_PARALLELISM (2),
#        FLINK_JM_MEMORY (1600m), FLINK_TM_MEMORY (4g), FLINK_TM_METASPACE (1536m),
#        WORKER_POOL_PORT (50000), WORKER_STATE_CACHE_MB (0), FLINK_MAX_RESTART_BACKOFF ("2 s"),
#        FLINK_HEARTBEAT_TIMEOUT_MS (15000),
#        FLINK_START_TIMEOUT seconds (90).
set -euo pipefail
# shellcheck source=runners/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

FLINK_HOME="$ROOT/.cache/flink/pyflink"
FLINK_REST_PORT="${FLINK_REST_PORT:-8081}"
WORKER_POOL_PORT="${WORKER_POOL_PORT:-50000}"
FLINK_LOCAL="$LOCAL/flink"
export FLINK_HOME
export FLINK_CONF_DIR="$FLINK_LOCAL/conf"
export FLINK_LOG_DIR="$FLINK_LOCAL/log"
export FLINK_PID_DIR="$FLINK_LOCAL/pids"
export FLINK_LIB_DIR="$FLINK_LOCAL/lib"

write_conf() {
  mkdir -p "$FLINK_CONF_DIR" "$FLINK_LOG_DIR" "$FLINK_PID_DIR" "$FLINK_LOCAL/tmp"
  cp "$FLINK_HOME"/conf/log4j*.properties "$FLINK_CONF_DIR"/
  "$VENV_PYTHON" - "$FLINK_HOME/conf/config.yaml" "$FLINK_CONF_DIR/config.yaml" <<EOF
import sys
import yaml

with open(sys.argv[1]) as f:
  conf = yaml.safe_load(f)

def put(path, value):
  node = conf
  keys = path.split('.')
  for key in keys[:-1]:
    node = node.setdefault(key, {})
  node[keys[-1]] = value

put('jobmanager.bind-host', 'localhost')
put('jobmanager.rpc.address', 'localhost')
put('jobmanager.memory.process.size', '${FLINK_JM_MEMORY:-1600m}')
put('taskmanager.bind-host', 'localhost')
put('taskmanager.host', 'localhost')
put('taskmanager.numberOfTaskSlots', ${FLINK_TASK_SLOTS:-4})
put('taskmanager.memory.process.size', '${FLINK_TM_MEMORY:-4g}')
# A job that ships jars (the Java baseline job, an uber jar, a job submitted without
# runners/flink_options.py) loads them in a fresh class loader that Beam does not fully
# release: with Flink's 256m default the TaskManager died of "OutOfMemoryError: Metaspace"
# after about five jobs that shipped Beam's classpath.
put('taskmanager.memory.jvm-metaspace.size', '${FLINK_TM_METASPACE:-1536m}')
put('parallelism.default', ${FLINK_PARALLELISM:-2})
put('rest.address', 'localhost')
put('rest.bind-address', 'localhost')
put('rest.port', ${FLINK_REST_PORT})
put('io.tmp.dirs', '$FLINK_LOCAL/tmp')
# Shipped job jars are kept in io.tmp.dirs until this cleanup runs (seconds).
put('blob.service.cleanup.interval', 120)
# Beam's runner keeps references to the user-code class loader after a job ends.
put('classloader.check-leaked-classloader', False)
# Fault tolerance (README "Guarantees"): job state in the TaskManager's heap, snapshotted to
# local files; a failed job restarts by itself from its last checkpoint, backing off from 1 s
# to 2 s between attempts (a replacement TaskManager or worker pool is used within 2 s of its
# arrival), without a limit (a broker or worker outage can last a while);
# the last checkpoints survive a cancel, so a job can be started again from them.
put('state.backend.type', 'hashmap')
put('state.checkpoints.dir', 'file://$FLINK_LOCAL/checkpoints')
put('state.savepoints.dir', 'file://$FLINK_LOCAL/savepoints')
put('state.checkpoints.num-retained', 3)
put('execution.checkpointing.externalized-checkpoint-retention', 'RETAIN_ON_CANCELLATION')
put('restart-strategy.type', 'exponential-delay')
put('restart-strategy.exponential-delay.initial-backoff', '1 s')
put('restart-strategy.exponential-delay.max-backoff', '${FLINK_MAX_RESTART_BACKOFF:-2 s}')
put('restart-strategy.exponential-delay.backoff-multiplier', 2.0)
put('restart-strategy.exponential-delay.reset-backoff-threshold', '60 s')
put('restart-strategy.exponential-delay.jitter-factor', 0.1)
# A TaskManager killed without a goodbye is noticed by the heartbeat timeout (Flink's default
# 50 s would alone exceed the 60 s recovery target).
put('heartbeat.timeout', ${FLINK_HEARTBEAT_TIMEOUT_MS:-15000})
put('heartbeat.interval', 3000)
with open(sys.argv[2], 'w') as f:
  f.write('# Written by runners/flink_cluster.sh from the distribution config; do not edit.\n')
  yaml.safe_dump(conf, f, default_flow_style=False, sort_keys=False)
EOF
}

FLINK_TASKMANAGERS="${FLINK_TASKMANAGERS:-2}"
[[ "$FLINK_TASKMANAGERS" =~ ^[1-9][0-9]*$ ]] \
  || die "FLINK_TASKMANAGERS must be a whole number >= 1, got '$FLINK_TASKMANAGERS'"

taskmanager_names() { # the recorded name (and resource id) of each TaskManager
  echo flink-taskmanager
  local i
  for ((i = 2; i <= FLINK_TASKMANAGERS; i++)); do echo "flink-taskmanager-$i"; done
}

rest_ready() { # every TaskManager has registered its slots with the JobManager
  local body
  body="$(curl -fsS "http://localhost:$FLINK_REST_PORT/overview" 2>/dev/null)" || return 1
  [[ "$body" == *"\"taskmanagers\":$FLINK_TASKMANAGERS,"* ]]
}

case "${1:-}" in
  start)
    "$ROOT/runners/fetch_flink.sh"
    [[ -x "$VENV_PYTHON" ]] || die "no Python environment at $VENV_PYTHON (needed for the worker pool)"
    t0=$SECONDS
    started=()  # what this start launched: all a failed start stops (a running job keeps the rest)
    if ! pid_of flink-jobmanager >/dev/null; then
      port_free_or_die 127.0.0.1 "$FLINK_REST_PORT" "Flink REST"
      port_free_or_die 127.0.0.1 6123 "Flink JobManager RPC"
      write_conf
      "$ROOT/runners/fetch_jars.sh"
      "$VENV_PYTHON" -m runners.cluster_lib "$FLINK_HOME/lib" "$FLINK_LIB_DIR" >&2
      start_daemon flink-jobmanager "$FLINK_HOME/bin/jobmanager.sh" start-foreground
      started+=(flink-jobmanager)
    fi
    for name in $(taskmanager_names); do
      if ! pid_of "$name" >/dev/null; then
        # Its own log file name (FLINK_IDENT_STRING) and resource id.
        start_daemon "$name" env FLINK_IDENT_STRING="$name" \
          "$FLINK_HOME/bin/taskmanager.sh" start-foreground -Dtaskmanager.resource-id="$name"
        started+=("$name")
      fi
    done
    if ! pid_of worker-pool >/dev/null; then
      port_free_or_die 127.0.0.1 "$WORKER_POOL_PORT" "Beam Python worker pool"
      # The pool starts each SDK worker as a plain `python -c ...` found on PATH, so the
      # virtual environment's bin/ goes first.
      start_daemon worker-pool env PATH="$(dirname "$VENV_PYTHON"):$PATH" \
        "$VENV_PYTHON" -m runners.worker_pool --port="$WORKER_POOL_PORT" \
        --state_cache_mb="${WORKER_STATE_CACHE_MB:-0}"
      started+=(worker-pool)
    fi
    timeout="${FLINK_START_TIMEOUT:-90}"
    stop_started() {
      local name
      for name in "${started[@]}"; do stop_daemon "$name" 30; done
      exit 1
    }
    if ! wait_until flink-jobmanager "$timeout" rest_ready \
        || ! wait_until worker-pool "$timeout" port_open 127.0.0.1 "$WORKER_POOL_PORT"; then
      log "overview: $(curl -fsS "http://localhost:$FLINK_REST_PORT/overview" 2>&1 || true)"
      stop_started
    fi
    for name in $(taskmanager_names); do
      pid_of "$name" >/dev/null || { log "$name died; see $LOGS/$name.log"; stop_started; }
    done
    log "ready after $((SECONDS - t0)) s: REST http://localhost:$FLINK_REST_PORT, worker pool localhost:$WORKER_POOL_PORT"
    ;;
  stop)
    stop_daemon worker-pool
    # Also TaskManagers beyond FLINK_TASKMANAGERS, recorded by an earlier start.
    for pidfile in "$PIDS"/flink-taskmanager*.pid; do
      [[ -e "$pidfile" ]] && stop_daemon "$(basename "$pidfile" .pid)" 30
    done
    stop_daemon flink-jobmanager 30
    ;;
  status)
    rc=0
    for name in flink-jobmanager $(taskmanager_names) worker-pool; do
      if pid="$(pid_of "$name")"; then
        echo "$name running (pid $pid)"
      else
        echo "$name not running"
        rc=1
      fi
    done
    exit $rc
    ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
