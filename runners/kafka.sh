#!/usr/bin/env bash
# Single-node Apache Kafka 4.x broker in KRaft mode (broker and controller in one JVM),
# listening on 127.0.0.1 only, with its data in .local/kafka.
#
# Usage: runners/kafka.sh start|stop|status|topics|restart|clean
#   start    format the storage on first use, start the broker, wait until it serves
#            requests, then create the project's topics (see runners/kafka_topics.py)
#   topics   create missing topics only
#   stop     stop the broker started by this script (recorded pid)
#   status   exit 0 and print the address when it is running
#   clean    stop it and delete its data (.local/kafka)
# Env:  KAFKA_PORT (default 9092), KAFKA_CONTROLLER_PORT (default KAFKA_PORT+1),
#       KAFKA_HEAP (default 512m), KAFKA_START_TIMEOUT seconds (default 90),
#       KAFKA_AUTO_CREATE_TOPICS (default false), topic names: see kafka_topics.py.
#       KAFKA_SSL_PORT (default none): also listen with TLS on 127.0.0.1:KAFKA_SSL_PORT, with
#       the key and certificate in KAFKA_SSL_KEYSTORE (PKCS12) whose password is
#       KAFKA_SSL_KEYSTORE_PASSWORD (written to the 0600 server.properties); no client
#       certificates. The PLAINTEXT listener stays (inter-broker traffic, topic admin).
# A broker on another KAFKA_PORT is another instance: .local/kafka-<port>, pid kafka-<port>.
set -euo pipefail
# shellcheck source=runners/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}"
KAFKA_HEAP="${KAFKA_HEAP:-512m}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
KAFKA_SSL_PORT="${KAFKA_SSL_PORT:-}"
NAME=kafka
[[ "$KAFKA_PORT" == 9092 ]] || NAME="kafka-$KAFKA_PORT"
KAFKA_DIR="$LOCAL/$NAME"
CONF="$KAFKA_DIR/server.properties"
BOOTSTRAP="127.0.0.1:$KAFKA_PORT"

listeners() { # the listener lines of server.properties: PLAINTEXT, CONTROLLER, SSL if asked
  local listen="PLAINTEXT://127.0.0.1:$KAFKA_PORT" advertised="PLAINTEXT://127.0.0.1:$KAFKA_PORT"
  local map="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
  if [[ -n "$KAFKA_SSL_PORT" ]]; then
    listen+=",SSL://127.0.0.1:$KAFKA_SSL_PORT"
    advertised+=",SSL://127.0.0.1:$KAFKA_SSL_PORT"
    map+=",SSL:SSL"
  fi
  echo "listeners=$listen,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT"
  echo "advertised.listeners=$advertised"
  echo "listener.security.protocol.map=$map"
  if [[ -n "$KAFKA_SSL_PORT" ]]; then
    [[ -r "${KAFKA_SSL_KEYSTORE:-}" && -n "${KAFKA_SSL_KEYSTORE_PASSWORD:-}" ]] \
      || die "KAFKA_SSL_PORT needs KAFKA_SSL_KEYSTORE (a readable PKCS12 file) and KAFKA_SSL_KEYSTORE_PASSWORD"
    echo "ssl.keystore.type=PKCS12"
    echo "ssl.keystore.location=$KAFKA_SSL_KEYSTORE"
    echo "ssl.keystore.password=$KAFKA_SSL_KEYSTORE_PASSWORD"
    echo "ssl.client.auth=none"
  fi
}

write_config() {
  local listener_lines
  listener_lines="$(listeners)" || exit 1
  mkdir -p "$KAFKA_DIR/data"
  : > "$CONF" && chmod 600 "$CONF"  # it may hold the keystore password
  cat > "$CONF" <<EOF
# Written by runners/kafka.sh; edits are overwritten at the next start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
$listener_lines
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$KAFKA_DIR/data
num.partitions=1
num.network.threads=2
num.io.threads=2
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=${KAFKA_AUTO_CREATE_TOPICS:-false}
log.retention.hours=24
# A dead letter carries its record's bytes in base64 (4/3 of their size) plus the reason:
# with Kafka's 1 MB default, the dead letter of a record near 1 MB could not be written.
message.max.bytes=4194304
EOF
}

JAVA_CMD=("$JAVA" -Xms"$KAFKA_HEAP" -Xmx"$KAFKA_HEAP" -XX:+UseG1GC
  -Dorg.slf4j.simpleLogger.showDateTime=true
  -Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS
  -Dorg.slf4j.simpleLogger.log.org.apache.kafka=warn
  -Dorg.slf4j.simpleLogger.log.kafka=warn
  -Dorg.slf4j.simpleLogger.log.kafka.server.KafkaRaftServer=info
  -cp "$JARS/kafka/*")

format_storage() {
  [[ -f "$KAFKA_DIR/data/meta.properties" ]] && return 0
  local cluster_id
  cluster_id="$("${JAVA_CMD[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)"
  log "formatting $KAFKA_DIR/data (cluster id $cluster_id)"
  "${JAVA_CMD[@]}" kafka.tools.StorageTool format --ignore-formatted -t "$cluster_id" -c "$CONF" \
    >> "$LOGS/$NAME.log" 2>&1 || die "storage format failed; see $LOGS/$NAME.log"
}

ready() { # the broker answers a metadata request
  port_open 127.0.0.1 "$KAFKA_PORT" \
    && "$VENV_PYTHON" "$ROOT/runners/kafka_topics.py" --bootstrap "$BOOTSTRAP" ping >/dev/null 2>&1
}

create_topics() {
  "$VENV_PYTHON" "$ROOT/runners/kafka_topics.py" --bootstrap "$BOOTSTRAP" create
}

case "${1:-}" in
  start)
    if pid_of "$NAME" >/dev/null; then
      log "already running on $BOOTSTRAP (pid $(pid_of "$NAME"))"
      create_topics
      exit 0
    fi
    ls "$JARS"/kafka/kafka_2.13-*.jar >/dev/null 2>&1 || "$ROOT/runners/fetch_jars.sh"
    port_free_or_die 127.0.0.1 "$KAFKA_PORT" kafka
    port_free_or_die 127.0.0.1 "$KAFKA_CONTROLLER_PORT" "kafka controller"
    [[ -z "$KAFKA_SSL_PORT" ]] || port_free_or_die 127.0.0.1 "$KAFKA_SSL_PORT" "kafka TLS"
    write_config
    format_storage
    t0=$SECONDS
    start_daemon "$NAME" "${JAVA_CMD[@]}" kafka.Kafka "$CONF"
    wait_until "$NAME" "$KAFKA_START_TIMEOUT" ready || { stop_daemon "$NAME"; exit 1; }
    log "ready on $BOOTSTRAP${KAFKA_SSL_PORT:+ (TLS on 127.0.0.1:$KAFKA_SSL_PORT)} after $((SECONDS - t0)) s (pid $(pid_of "$NAME"), log $LOGS/$NAME.log)"
    create_topics
    ;;
  topics)
    create_topics
    ;;
  stop)
    stop_daemon "$NAME" 30
    ;;
  restart)
    "$0" stop
    exec "$0" start
    ;;
  clean)
    stop_daemon "$NAME" 30
    rm -rf "$KAFKA_DIR"
    log "removed $KAFKA_DIR"
    ;;
  status)
    if pid="$(pid_of "$NAME")"; then
      echo "$NAME running on $BOOTSTRAP (pid $pid)"
    else
      echo "$NAME not running"
      exit 1
    fi
    ;;
  *)
    echo "usage: $0 start|stop|status|topics|restart|clean" >&2
    exit 2
    ;;
esac
