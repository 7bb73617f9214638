"""The original Java job (the benchmark's baseline, bench/java_baseline.py) in a local Flink
MiniCluster against real Kafka: spikes are alerted once per window that holds them, and
malformed lines are counted and skipped without stopping the job.

Needs the job jar (runners/fetch_jars.sh) and Flink's lib/ (runners/fetch_flink.sh). The
broker is 127.0.0.1:$KAFKA_PORT (default 9092), started unless it runs, like kafka.sh.
"""

import json
import os
import subprocess
import time
import uuid
from collections import Counter
from typing import List, Optional, Sequence

import pytest
from kafka import KafkaProducer

from bench.java_baseline import local_command, program_args
from runners import kafka_topics
from runners.services import Services
from runners.topic_reader import read_topic, wait_for

pytestmark = pytest.mark.e2e

BOOTSTRAP = f"127.0.0.1:{os.environ.get('KAFKA_PORT', '9092')}"
WINDOW_MS, SLIDE_MS = 4000, 2000  # every reading is in exactly 2 windows
SENSORS, PER_BATCH, SPIKE_AT = 5, 40, 20
SPIKE = 300.0
# Unusable values: not CSV, not a number, no sensor, a third field, not finite, a tombstone.
MALFORMED: List[Optional[bytes]] = [
    b'garbage', b'sensor-2,not-a-number', b',100', b'sensor-1,100,7', b'sensor-3,NaN', None]


def batch(spiking: Sequence[int]) -> List[bytes]:
  """PER_BATCH readings of each sensor, interleaved, 98..102; reading SPIKE_AT of each
  spiking sensor is SPIKE (+200).

  The topic has one partition and the job parallelism 1, so a processing-time window holds
  a contiguous stretch of each sensor's readings, and one holding a spike holds at least the
  first or the last half of that sensor's batch (the batch arrives in well under a slide):
  average <= 102 + 200 / 20 = 112, so the spike deviates by >= 188 and a normal reading by
  <= 14, against the threshold 50. Whole batch: (~100 x 39 + 300) / 40 ~ 105.
  """
  lines = []
  for i in range(PER_BATCH):
    for sensor in range(SENSORS):
      value = SPIKE if i == SPIKE_AT and sensor in spiking else 100.0 + (i + sensor) % 5 - 2
      lines.append(f'sensor-{sensor},{value}'.encode())
  return lines


@pytest.fixture(scope='module')
def kafka():
  started = Services()
  try:
    started.ensure('kafka.sh')  # on $KAFKA_PORT, which kafka.sh reads as well
    yield BOOTSTRAP
  finally:
    started.stop_started()


def test_original_job_flags_spikes_and_survives_malformed_lines(kafka, tmp_path):
  suffix = uuid.uuid4().hex[:8]
  readings, alerts = f'baseline-readings-{suffix}', f'baseline-alerts-{suffix}'
  admin = kafka_topics.admin(kafka)
  kafka_topics.create(admin, {readings: 1, alerts: 1})
  producer = KafkaProducer(bootstrap_servers=kafka, acks='all')
  log_file, job_out = str(tmp_path / 'job.log'), str(tmp_path / 'job.out')
  args = program_args(kafka, readings, alerts, window_ms=WINDOW_MS, slide_ms=SLIDE_MS,
                      threshold=50.0, group_id=f'baseline-{suffix}', parallelism=1)
  job = None

  def send(values: Sequence[Optional[bytes]]) -> None:
    for value in values:  # a key, because a tombstone needs one; the job reads values only
      producer.send(readings, key=b'reading', value=value)
    producer.flush()

  def alerts_when(count: int):
    def check():
      if job.poll() is not None:  # its exception is the end of its output
        with open(job_out, encoding='utf-8', errors='replace') as handle:
          tail = handle.read()[-3000:]
        raise AssertionError(f'the job exited with {job.returncode}; output tail:\n{tail}')
      records = read_topic(kafka, alerts)
      return records if len(records) >= count else None
    return check

  try:
    # Malformed lines first: the spikes after them must still be alerted.
    send(MALFORMED + batch(spiking=[1, 3]))
    with open(job_out, 'w', encoding='utf-8') as out:
      job = subprocess.Popen(local_command(args, log_file=log_file), stdout=out,
                             stderr=subprocess.STDOUT)
    wait_for(alerts_when(4), 60, 'alerts of sensor-1 and sensor-3 (2 windows each)', 0.5)
    # The running job meets malformed lines again, then one more spike.
    send(MALFORMED + batch(spiking=[4]))
    records = wait_for(alerts_when(6), 30, 'the alerts of sensor-4 after more malformed lines',
                       0.5)

    values = [json.loads(r.value) for r in records]
    assert Counter((v['sensor_id'], v['value']) for v in values) == {
        ('sensor-1', SPIKE): 2, ('sensor-3', SPIKE): 2, ('sensor-4', SPIKE): 2}, values
    assert [r.key.decode() for r in records] == [v['sensor_id'] for v in values]
    for record, value in zip(records, values):
      assert value['window_end_ms'] - value['window_start_ms'] == WINDOW_MS
      assert abs(value['value'] - value['window_avg']) > 150, value
      # Stamped when sent, which is when the window fired, not before its end.
      assert value['window_end_ms'] - 1 <= record.timestamp <= time.time() * 1000, (record, value)
    assert job.poll() is None, 'the job stopped'
    with open(log_file, encoding='utf-8', errors='replace') as handle:
      log = handle.read()
    assert log.count('skipping malformed line') == 2 * len(MALFORMED), log[-3000:]
  finally:
    if job is not None:
      job.terminate()
      try:
        job.wait(timeout=30)
      except subprocess.TimeoutExpired:
        job.kill()
        job.wait()
    producer.close()
    kafka_topics.delete(admin, [readings, alerts])
    admin.close()
