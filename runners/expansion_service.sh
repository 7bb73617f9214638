#!/usr/bin/env bash
# Java expansion service for KafkaIO (ReadFromKafka / WriteToKafka from Python), on
# 127.0.0.1:$EXPANSION_PORT. By default it gives the expanded Java transforms the EMBEDDED
# environment, so their Java SDK harness runs inside the Flink JVM (job server or
# TaskManager): no Docker.
# Python then uses expansion_service='localhost:$EXPANSION_PORT'.
#
# Usage: runners/expansion_service.sh start|stop|status
# Env:   EXPANSION_PORT (default 8097), EXPANSION_HEAP (default 512m),
#        EXPANSION_ENVIRONMENT (default EMBEDDED; DOCKER for runners whose Java workers run in
#        containers, e.g. Dataflow: the transforms then get Beam's Java SDK image and list the
#        service's whole classpath as artifacts to stage, see docs/deploying.md),
#        EXPANSION_ARGS (pipeline options for the service; default
#        --experiments=use_deprecated_read, see below; set it to '' for the SDF read),
#        EXPANSION_START_TIMEOUT seconds (default 60).
#
# use_deprecated_read makes ReadFromKafka expand to the UnboundedSource-based read, which
# Flink runs through its source wrapper. With the default splittable-DoFn read, streaming
# jobs on this Flink 1.19 runner sometimes never emit anything (docs/design.md, "The
# deprecated read").
# The experiment must be given to the expansion service: a Python --experiments flag does
# not reach the Java expansion.
#
# --filesToStage names only the (empty) launcher jar: otherwise the expanded environment lists
# the service's whole classpath (~130 jars) as artifacts, which Python then stages to the job
# server for every job although the EMBEDDED harness uses the job server's own classpath.
set -euo pipefail
# shellcheck source=runners/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

EXPANSION_PORT="${EXPANSION_PORT:-8097}"
EXPANSION_ENVIRONMENT="${EXPANSION_ENVIRONMENT:-EMBEDDED}"
# A service on another port is another instance, with its own pid and log.
NAME=expansion-service
[[ "$EXPANSION_PORT" == 8097 ]] || NAME="expansion-service-$EXPANSION_PORT"

case "${1:-}" in
  start)
    if pid="$(pid_of "$NAME")"; then
      log "already running on localhost:$EXPANSION_PORT (pid $pid)"
      exit 0
    fi
    "$ROOT/runners/fetch_jars.sh"
    launchers=("$JARS"/expansion-service/beam-kafka-expansion-service-*.jar)
    launcher="${launchers[0]}"
    port_free_or_die 127.0.0.1 "$EXPANSION_PORT" "$NAME"
    environment=(--defaultEnvironmentType="$EXPANSION_ENVIRONMENT")
    [[ "$EXPANSION_ENVIRONMENT" == EMBEDDED ]] && environment+=(--filesToStage="$launcher")
    t0=$SECONDS
    # shellcheck disable=SC2086
    start_daemon "$NAME" "$JAVA" -Xmx"${EXPANSION_HEAP:-512m}" -jar "$launcher" "$EXPANSION_PORT" \
      "${environment[@]}" ${EXPANSION_ARGS---experiments=use_deprecated_read}
    wait_until "$NAME" "${EXPANSION_START_TIMEOUT:-60}" port_open 127.0.0.1 "$EXPANSION_PORT" \
      || { stop_daemon "$NAME"; exit 1; }
    log "ready on localhost:$EXPANSION_PORT ($EXPANSION_ENVIRONMENT) after $((SECONDS - t0)) s (pid $(pid_of "$NAME"))"
    ;;
  stop)
    stop_daemon "$NAME"
    ;;
  status)
    report_status "$NAME" "localhost:$EXPANSION_PORT"
    ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
