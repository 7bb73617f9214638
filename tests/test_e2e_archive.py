"""End to end on real Kafka and embedded Flink: the Parquet archive keeps exactly the alerts.

5 sensors x 600 readings (30 readings/s of event time, so 100 s), 5 injected anomalies
and 5 malformed records, pre-loaded in the past into a readings topic of 4 partitions of
which one stays idle. The job runs with `--archive_dir --archive_period=60`: once the
alerts topic is complete (tests/oracle.py gives the expected set) and the watermark has
passed the last file window, the archived alerts are the topic's alerts, in files of the
declared schema, under alerts/dt=YYYY-MM-DD/hour=HH/, with no temporary file visible.
"""

import os
import re
import time
from collections import Counter

import pyarrow.parquet as pq
import pytest

from pipeline.archive import ALERTS_SCHEMA
from pipeline.archive_read import read_output
from runners.simulator import generate
from runners.topic_reader import wait_for
from tests.e2e_job import JobRun, readings_of
# The module fixture that starts kafka.sh and expansion_service.sh unless they run, and
# stops what it started.
from tests.test_e2e_kafka_flink import services  # pylint: disable=unused-import
from tests.oracle import expected_alert_ids
from transforms.records import iso_ms

pytestmark = pytest.mark.e2e

SENSORS, PER_SENSOR, ANOMALIES, MALFORMED = 5, 600, 5, 5
RATE = 30.0  # readings/s of event time, all sensors: 100 s of event time
PERIOD_S = 60
FILE_PATH = re.compile(r'alerts/dt=\d{4}-\d{2}-\d{2}/hour=\d{2}/part-[^/]+\.parquet')


def scenario():
  total = SENSORS * PER_SENSOR
  # Event times end 60 s ago: the watermark passes the last file window soon after start.
  start_ms = int(time.time() * 1000) - int(total / RATE * 1000) - 60_000
  start_ms -= start_ms % 5000
  return list(generate(SENSORS, total, RATE, start_ms, ANOMALIES, MALFORMED, seed=11,
                       shift_settle_s=15.0))


def archive_files(archive):
  """Every file under archive, as paths relative to it."""
  return sorted(os.path.relpath(os.path.join(folder, name), archive)
                for folder, _, names in os.walk(archive) for name in names)


def archived_alert_count(archive) -> int:
  try:
    return read_output(archive, 'alerts').num_rows
  except FileNotFoundError:
    return 0


def test_archive_holds_the_alerts_of_the_topic(services, tmp_path):
  records = scenario()
  readings = readings_of(records)
  expected = expected_alert_ids(readings, 10_000, 5_000, 50.0)
  assert len(readings) == SENSORS * PER_SENSOR and expected
  last_ts = max(r.ts_ms for r in readings)
  last_window_end = iso_ms(last_ts - last_ts % 5000 + 10_000)
  archive = str(tmp_path / 'archive')

  job = JobRun('embedded', readings_partitions=4)
  try:
    job.produce(records, partitions=3)  # partition 3 stays idle
    job.start([f'--archive_dir={archive}', f'--archive_period={PERIOD_S}'])
    job.wait_for_outputs(len(expected), MALFORMED, last_window_end, SENSORS, timeout_s=300)
    topic_ids = Counter(a['alert_id'] for a in job.read('alerts'))
    assert set(topic_ids) == expected and max(topic_ids.values()) == 1

    def archived_all():
      job.raise_if_failed()
      return archived_alert_count(archive) >= len(topic_ids)
    # The last file window closes when the watermark passes its end (at most
    # PERIOD_S after the last alert's event time, which is long past).
    wait_for(archived_all, 180, f'{job.job_name}: {len(topic_ids)} archived alerts')
    archived_at = time.monotonic() - job.started_at

    table = read_output(archive, 'alerts')
    assert Counter(table.column('alert_id').to_pylist()) == topic_ids
    files = archive_files(archive)
    alert_files = [f for f in files if f.startswith('alerts' + os.sep)]
    assert alert_files, files
    # The job still runs: only the alerts' files are known to be finished (a statistics
    # file may be in the middle of its write-then-rename).
    hidden = [f for f in alert_files if os.path.basename(f).startswith(('.', '_'))]
    assert hidden == [], hidden
    for path in alert_files:
      assert FILE_PATH.fullmatch(path.replace(os.sep, '/')), path
      schema = pq.read_schema(os.path.join(archive, path))
      assert schema.equals(ALERTS_SCHEMA, check_metadata=True), (path, schema)
    print(f'archive complete {archived_at:.0f} s after start: {len(alert_files)} alert files, '
          f'{table.num_rows} alerts')
  finally:
    job.close()
