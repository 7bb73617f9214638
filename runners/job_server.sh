#!/usr/bin/env bash
# Beam's Flink job server (Beam 2.70.0, Flink 1.19) on localhost:$JOB_PORT, for pipelines run
# with --runner=FlinkRunner --job_endpoint=localhost:$JOB_PORT.
#
#   FLINK_MASTER='[local]' (default): jobs run in a Flink MiniCluster inside this JVM
#                                     (Python workers: LOOPBACK or EXTERNAL)
#   FLINK_MASTER=localhost:8081       jobs are submitted to the standalone cluster
#                                     (runners/flink_cluster.sh)
#
# Usage: runners/job_server.sh start|stop|status
# Env:   JOB_PORT (8099), ARTIFACT_PORT (8098), JOB_SERVER_EXPANSION_PORT (0 = any free port;
#        the KafkaIO expansion service is runners/expansion_service.sh),
#        JOB_SERVER_HEAP (1g), JOB_SERVER_START_TIMEOUT seconds (60),
#        FLINK_CLIENT_CONF_DIR (a Flink configuration for the job server's Flink client; by
#        default the launcher writes one that only registers its job-cancel listener, see
#        runners/java/flink-job-server; one given here must set execution.job-listeners to
#        local.anomaly.flink.FlinkJobCanceller for Beam's cancel to stop Flink jobs).
set -euo pipefail
# shellcheck source=runners/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NAME=job-server
FLINK_MASTER="${FLINK_MASTER:-[local]}"
JOB_PORT="${JOB_PORT:-8099}"
ARTIFACT_PORT="${ARTIFACT_PORT:-8098}"

case "${1:-}" in
  start)
    if pid="$(pid_of "$NAME")"; then
      log "already running on localhost:$JOB_PORT (pid $pid)"
      exit 0
    fi
    "$ROOT/runners/fetch_jars.sh"
    launchers=("$JARS"/flink-job-server/beam-runners-flink-*-job-server-*.jar)
    launcher="${launchers[0]}"
    port_free_or_die 127.0.0.1 "$JOB_PORT" "$NAME"
    port_free_or_die 127.0.0.1 "$ARTIFACT_PORT" "artifact staging"
    mkdir -p "$LOCAL/beam-artifacts"
    args=(--flink-master "$FLINK_MASTER" --job-host localhost --job-port "$JOB_PORT"
          --artifact-port "$ARTIFACT_PORT" --expansion-port "${JOB_SERVER_EXPANSION_PORT:-0}"
          --artifacts-dir "$LOCAL/beam-artifacts" --clean-artifacts-per-job true)
    if [[ -n "${FLINK_CLIENT_CONF_DIR:-}" ]]; then
      args+=(--flink-conf-dir "$FLINK_CLIENT_CONF_DIR")
    fi
    t0=$SECONDS
    start_daemon "$NAME" env -u FLINK_CONF_DIR "$JAVA" -Xmx"${JOB_SERVER_HEAP:-1g}" \
      -Dorg.slf4j.simpleLogger.showDateTime=true \
      -Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS \
      -Dorg.slf4j.simpleLogger.log.org.apache.flink=warn \
      -jar "$launcher" "${args[@]}"
    wait_until "$NAME" "${JOB_SERVER_START_TIMEOUT:-60}" port_open 127.0.0.1 "$JOB_PORT" \
      || { stop_daemon "$NAME"; exit 1; }
    log "ready on localhost:$JOB_PORT (flink master $FLINK_MASTER) after $((SECONDS - t0)) s (pid $(pid_of "$NAME"))"
    ;;
  stop)
    stop_daemon "$NAME"
    ;;
  status)
    report_status "$NAME" "localhost:$JOB_PORT"
    ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
