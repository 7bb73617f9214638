#!/usr/bin/env bash
# Resolve the project's Java services from Maven Central into .cache/jars/ (see pom.xml):
#   .cache/jars/kafka/               Kafka broker classpath (KRaft)
#   .cache/jars/flink-job-server/    Beam Flink job server classpath + launcher jar
#   .cache/jars/expansion-service/   KafkaIO expansion service classpath + launcher jar
#   .cache/jars/original-job/        the original Java Flink job (benchmark baseline), one
#                                    shaded jar to submit to Flink (bench/java_baseline.py)
#
# Idempotent: a stamp records a hash of pom.xml and runners/java/; when it matches and the
# folders are there, the script returns at once without running Maven.
#
# Usage: runners/fetch_jars.sh [--force]
# Env:   MVN (default mvn), MVN_ARGS (extra Maven arguments, e.g. -o for offline).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
JARS="$ROOT/.cache/jars"
STAMP="$JARS/.stamp"
MVN="${MVN:-mvn}"

inputs_hash() {
  (cd "$ROOT" && find pom.xml runners/java -type f \( -name '*.xml' -o -name '*.java' \) \
      -not -path '*/target/*' -print0 | sort -z | xargs -0 sha256sum) | sha256sum | cut -d' ' -f1
}

want="$(inputs_hash)"
if [[ "${1:-}" != "--force" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]] \
    && ls "$JARS"/kafka/kafka_2.13-*.jar \
          "$JARS"/flink-job-server/beam-runners-flink-*-job-server-*.jar \
          "$JARS"/expansion-service/beam-kafka-expansion-service-*.jar \
          "$JARS"/original-job/original-job-*.jar >/dev/null 2>&1; then
  exit 0
fi

echo "fetch_jars: resolving Java services with Maven into $JARS" >&2
start=$SECONDS
# Built into fresh folders beside the live ones, so that jars of a previous version never
# stay on a classpath, and swapped in only once Maven succeeded: a job or service starting
# during a rebuild (or after a failed one) still finds complete folders.
NEW="$ROOT/.cache/jars.new"
rm -rf "$NEW"
# shellcheck disable=SC2086
"$MVN" -B -q -f "$ROOT/pom.xml" ${MVN_ARGS:-} package \
  -Djars.dir="$NEW" -Dbuild.root="$ROOT/.cache/build"
mkdir -p "$JARS"
for role in "$NEW"/*/; do
  role="$(basename "$role")"
  rm -rf "$JARS/$role.old"
  [[ -d "$JARS/$role" ]] && mv "$JARS/$role" "$JARS/$role.old"
  mv "$NEW/$role" "$JARS/$role"
  rm -rf "$JARS/$role.old"
done
rmdir "$NEW"
echo "$want" > "$STAMP"
echo "fetch_jars: done in $((SECONDS - start)) s" >&2
