"""One streaming run of the job on real Kafka and Flink, for the e2e tests.

A run owns fresh topics (unique names), pre-loads them with simulator records, starts the
job on the embedded or cluster Flink runner, and reads the output topics back. It always
cancels the job and deletes its topics, also when the test fails.
"""

import base64
import json
import logging
import time
import urllib.parse
import uuid
from collections import Counter
from typing import Dict, List, Optional

from kafka import KafkaProducer

from pipeline.main import run
from runners import flink_rest as flink_rest_api
from runners import kafka_topics
from runners.flink_options import flink_args
from runners.simulator import Record, produce
from runners.topic_reader import read_topic, wait_for
from transforms.parse import RecordParser
from transforms.records import RawRecord, Reading

log = logging.getLogger(__name__)

BOOTSTRAP = '127.0.0.1:9092'
FLINK_REST = 'localhost:8081'
# The original job's rule, spelled out so the tests do not depend on the default detector.
DETECTION_ARGS = ['--window_size=10', '--window_period=5', '--baseline=trailing',
                  '--rule=absolute', '--threshold=50', '--min_count=1']


def flink_rest(path: str):
  return flink_rest_api.call(path, rest=FLINK_REST)


def flink_job(job_name: str) -> Optional[dict]:
  """The newest job of that name in the Flink REST API, or None."""
  return flink_rest_api.job_by_name(job_name, rest=FLINK_REST)


def flink_user_counters(jid: str) -> Dict[str, int]:
  """Beam counters of a Flink job as its REST API shows them, summed over operators and
  subtasks. Flink names each "<subtask>.<operator>.<namespace>_<counter>"."""
  counters: Dict[str, int] = {}
  prefix = 'anomaly_'
  for vertex in flink_rest(f'/jobs/{jid}')['vertices']:
    base = f"/jobs/{jid}/vertices/{vertex['id']}/metrics"
    ids = [m['id'] for m in flink_rest(base) if m['id'].rsplit('.', 1)[-1].startswith(prefix)]
    if not ids:
      continue
    for metric in flink_rest(base + '?get=' + ','.join(urllib.parse.quote(i) for i in ids)):
      name = metric['id'].rsplit('.', 1)[-1][len(prefix):]
      counters[name] = counters.get(name, 0) + int(float(metric['value']))
  return counters


class JobRun:
  """Topics, input, the running job and its outputs for one e2e scenario."""

  def __init__(self, mode: str, readings_partitions: int = 5):
    self.mode = mode
    self.suffix = uuid.uuid4().hex[:8]
    self.job_name = f'e2e-{mode}-{self.suffix}'
    self.topics = {name: f'e2e-{name}-{self.suffix}' for name in kafka_topics.TOPIC_KEYS}
    self.readings_partitions = readings_partitions
    self.result = None
    self._admin = kafka_topics.admin(BOOTSTRAP)
    kafka_topics.create(self._admin, {
        name: readings_partitions if key == 'readings' else 1
        for key, name in self.topics.items()})

  def produce(self, records: List[Record], partitions: int) -> None:
    """Sends records now, sensor i to partition i % partitions (the others stay idle)."""
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=20, acks='all')
    try:
      produce(producer, self.topics['readings'], records, pace=False, partitions=partitions)
    finally:
      producer.close()

  def start(self, extra_args: List[str] = ()) -> None:
    argv = flink_args(self.mode, self.job_name) + DETECTION_ARGS + [
        f'--bootstrap_servers={BOOTSTRAP}',
        *kafka_topics.job_topic_args(self.topics),
        f'--group_id={self.job_name}',
        *extra_args,
    ]
    self.started_at = time.monotonic()
    self.result = run(argv, wait=False)

  def read(self, key: str) -> List[dict]:
    return [json.loads(r.value) for r in read_topic(BOOTSTRAP, self.topics[key])]

  def wait_for_outputs(self, expected_alerts: int, expected_dead: int, last_window_end: str,
                       sensors: int, timeout_s: float) -> None:
    """Polls until the outputs are complete: every sensor's last window and every expected
    alert and dead letter arrived; then waits a little longer for anything extra."""
    def complete():
      self.raise_if_failed()
      stats = self.read('stats')
      last = sum(1 for s in stats if s['window_end'] == last_window_end)
      return (last >= sensors and len(self.read('alerts')) >= expected_alerts
              and len(self.read('dead')) >= expected_dead)
    wait_for(complete, timeout_s,
             f'{self.job_name}: {expected_alerts} alerts, {expected_dead} dead letters and '
             f'the windows ending {last_window_end} of {sensors} sensors')
    time.sleep(5)  # outputs that should not exist get a chance to show up

  def raise_if_failed(self) -> None:
    state = self.result.state
    if state in ('FAILED', 'CANCELLED', 'DONE', 'STOPPED'):
      raise AssertionError(f'job {self.job_name} ended early: {state}')

  def close(self) -> None:
    try:
      if self.result is not None and self.result.state not in ('FAILED', 'CANCELLED', 'DONE'):
        self.result.cancel()
      if self.mode == 'cluster':
        wait_for(lambda: (flink_job(self.job_name) or {}).get('state') in
                 (None, 'CANCELED', 'FAILED', 'FINISHED'), 60,
                 f'Flink job {self.job_name} to stop')
    finally:
      kafka_topics.delete(self._admin, list(self.topics.values()))
      self._admin.close()


def readings_of(records: List[Record]) -> List[Reading]:
  """The valid readings among records, as the pipeline's parser sees them."""
  parser = RecordParser()
  readings = []
  for record in records:
    parsed = parser.parse(RawRecord(record.payload, timestamp_ms=record.ts_ms))
    if isinstance(parsed, Reading):
      readings.append(parsed)
  return readings


def dead_letter_signature(dead_letters: List[dict]) -> Counter:
  """(payload hex, reason) of dead letters from the topic, as a multiset."""
  return Counter((base64.b64decode(d['payload_base64']).hex(), d['reason']) for d in dead_letters)
