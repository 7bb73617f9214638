#!/usr/bin/env bash
# Install a standalone Apache Flink distribution from PyPI into .cache/flink.
#
# PyPI's apache-flink-libraries ships flink-dist with lib/, opt/ and plugins/;
# apache-flink ships bin/ and conf/. Installed side by side with --no-deps they
# form a complete Flink at .cache/flink/pyflink (FLINK_HOME). They are never
# installed into the pipeline's virtual environment: apache-flink pins an old
# apache-beam of its own.
#
# Usage: runners/fetch_flink.sh           (no-op when already installed)
# Env:   FLINK_VERSION (default 1.19.3; must match the Beam Flink runner's
#        Flink minor version, see pom.xml), PYTHON (default python3).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FLINK_VERSION="${FLINK_VERSION:-1.19.3}"
PYTHON="${PYTHON:-python3}"
TARGET="$ROOT/.cache/flink"
STAMP="$TARGET/.installed-$FLINK_VERSION"

if [[ -f "$STAMP" ]]; then
  exit 0
fi

echo "fetch_flink: installing Flink $FLINK_VERSION from PyPI into $TARGET" >&2
rm -rf "$TARGET"
mkdir -p "$TARGET"
"$PYTHON" -m pip install --quiet --disable-pip-version-check --no-deps \
  --target "$TARGET" \
  "apache-flink-libraries==$FLINK_VERSION" "apache-flink==$FLINK_VERSION"

FLINK_HOME="$TARGET/pyflink"
for f in bin/jobmanager.sh bin/taskmanager.sh conf/config.yaml; do
  if [[ ! -e "$FLINK_HOME/$f" ]]; then
    echo "fetch_flink: $FLINK_HOME/$f is missing after install" >&2
    exit 1
  fi
done
ls "$FLINK_HOME"/lib/flink-dist*.jar >/dev/null
chmod +x "$FLINK_HOME"/bin/*
touch "$STAMP"
echo "fetch_flink: FLINK_HOME=$FLINK_HOME" >&2
