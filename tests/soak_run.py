"""A soak run: a week of event time through the job on the standalone cluster, compressed.

Issue 20: the job must run for months, so its state must stop growing once the history it
reads is full. This run shows whether it does. It writes the soak into a fresh readings
topic (days of readings, timestamped in the past) while it starts the job (checkpoints on, the `absolute` rule of tests/e2e_job.py DETECTION_ARGS, whose alerts
tests/oracle.py predicts exactly). Event time must lie in the past and the job must never
catch up with the data while the soak runs: the job's read (IdleAwareCreateTimePolicy in
runners/java/kafka-event-time) moves a caught-up partition's watermark to about now, which
would make every later reading late. At the end every partition catches up, its watermark
jumps to now and the last windows fire.

The job reads that backlog PACED (Pacer): a Kafka client quota on the job's consumer
(`client.id`, small fetches) holds the read at the pace the judging step keeps up with. Read
unpaced, the readings reach the judging step long before their slots' baselines (which pass
through four groupings) and wait there: Beam's Flink runner re-examines every waiting
reading, and finishes a bundle, for each side-input element that arrives, so the wait grows
quadratically, the TaskManager heap fills, and the job stalls within a simulated day. The
pacer measures how far the readings are ahead of the slots whose baselines exist (the
smallest watermark of the job's steps, from Flink REST, plus --baseline_lag) and adjusts the
quota to keep that lead near `lead_ms` of event time. So the soak's speed is the job's: what
limits it is the work per slot (each slot's baselines cross four groupings and the judging
step finishes a bundle for each), not the readings.

Per simulated day, once every slot of the day has its baselines (the smallest watermark of
the job's steps plus the lag has passed the day's end), it pauses the read (Pacer.pause: a
quota cut that makes the broker throttle the job's consumer for about PAUSE_S; the backlog
stays) and waits until the job is still (the backlog and every watermark unchanged), so that
no day's figures include readings in flight, and records:
- `heap_mb`: heap used of each TaskManager running the job right after a full collection
  (`jcmd <pid> GC.run`, then `GC.heap_info`), summed;
- `worker_rss_mb`: the resident memory of every Python SDK worker (the worker pool's
  descendants), summed, and each worker's;
- a checkpoint taken at that moment (Flink's manual trigger, REST `/jobs/<jid>/checkpoints`):
  `state_size`, `checkpointed_size`, and `persisted_data`, the in-flight buffers an unaligned
  checkpoint also carries (they depend on the backlog at that moment, not on the state);
  `state_mb` is state_size minus persisted_data.

Verdict: for each of state_mb, heap_mb and worker_rss_mb, the figure of the LAST day must be
at most GROWTH_LIMIT (20 %) above the figure of day 1 (the first full day; both taken the
same way, at the day's end, with a backlog still to read); shrinking passes.
And the outputs must be exact: the alert ids, once duplicates are dropped, are exactly
tests/oracle.py's set; the dead letters, deduplicated by source partition and offset, are
exactly the malformed records produced; the late topic is empty.

The load (SoakPlan): `dense` sensors report every 10 s, staggered over the grid; `sparse`
sensors every 5 minutes. Sensor 0 (dense) stops on day 2, the last sensor (dense) starts on
day 3; spikes on dense sensors give alerts on every day; a few malformed records a day give
dead letters. The job runs with windows of 2 minutes every minute (`period_ms`): its cost in
compressed time is per slot (each slot's baselines cross four groupings, and the judging
step finishes a Python bundle for every slot's side-input element that arrives), so the
period sets how fast a week passes: ~10 minutes here at 60 s, ~40 at the job's default 5 s
(`--period_s 5`, by hand). State per slot and per sensor is the same code at any period.

  .venv/bin/python -m tests.soak_run --days 7     # make soak DAYS=7 [PERIOD=5]; services running
  FLINK_REST_PORT=8181 WORKER_POOL_PORT=50100 ...  # another cluster (runners/flink_cluster.sh)
"""

import argparse
import heapq
import itertools
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
import traceback
import urllib.parse
from collections import Counter
from datetime import datetime, timezone
from typing import Dict, Iterator, List, NamedTuple, Optional, Tuple

from kafka import KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.protocol.admin.client_quotas import AlterClientQuotasRequest

from bench.rss import descendants, read_status
from pipeline.options import DEFAULT_TRAILING_LAG_S
from runners import flink_rest, kafka_topics
from runners.simulator import MALFORMED_SAMPLES, SensorModel
from runners.topic_reader import end_offsets, wait_for
from tests.e2e_job import BOOTSTRAP, JobRun
from tests.fault_run import ROOT, recorded_pid
from tests.oracle import expected_alert_ids
from transforms.records import Reading

DAY_MS = 86_400_000
# One partition: under a quota in bytes Beam's Kafka read serves a consumer's partitions
# unevenly, and the faster one's readings wait in state for the slower one's watermark
# (docs/state.md).
PARTITIONS = 1
SOAK_DIR = os.path.join(ROOT, '.local/soak')
GROWTH_LIMIT = 0.20  # the last day's figures at most 20 % above day 1's (issue 20)
GROWTH_FIGURES = ('state_mb', 'heap_mb', 'worker_rss_mb')
# The pacer's target: readings at most this many periods of event time ahead of their
# baselines (the judging step re-examines every waiting reading per slot that arrives).
LEAD_PERIODS = 180
# A day's figures are taken with the read paused for about PAUSE_S and the job still (its
# backlog and watermarks unchanged over STILL_POLLS seconds).
PAUSE_S = 20
STILL_POLLS = 3
MB = 1024 * 1024
# The cluster, as runners/flink_cluster.sh starts it (the same environment variables).
REST = f"localhost:{os.environ.get('FLINK_REST_PORT', '8081')}"
WORKER_POOL = f"localhost:{os.environ.get('WORKER_POOL_PORT', '50000')}"


class SoakPlan(NamedTuple):
  """What the soak produces, and the job's windows; times in ms of event time."""
  days: int = 7
  # The job's --window_period (its windows are two periods long). The job's cost in
  # compressed time is per slot, so the slot decides how fast a week passes: 60 s gives the
  # 10,080 slots of a week in minutes; the default 5 s (120,960) takes ~40 min by hand.
  period_ms: int = 60_000
  dense: int = 12  # sensors reporting every dense_every_ms
  dense_every_ms: int = 10_000
  sparse: int = 90  # sensors reporting every sparse_every_ms
  sparse_every_ms: int = 300_000
  spikes_per_day: int = 6
  malformed_per_day: int = 2
  # Event time after the last day: more than the read ever runs ahead of the baselines
  # (LEAD_PERIODS periods: 3 h at 60 s), so the last day's figures are taken with a backlog
  # still to read, as every other day's (a read at its end moves the watermark to now and
  # every window fires).
  tail_ms: int = 5 * 3_600_000
  seed: int = 20

  @property
  def size_ms(self) -> int:
    return 2 * self.period_ms

  def window_args(self) -> List[str]:
    return [f'--window_size={self.size_ms / 1000:g}', f'--window_period={self.period_ms / 1000:g}']

  @property
  def sensors(self) -> int:
    return self.dense + self.sparse + 1  # + the one that starts on day 3

  @property
  def span_ms(self) -> int:
    return self.days * DAY_MS + self.tail_ms

  def bytes_per_day(self, sample: int = 2_000) -> float:
    """About how many bytes (values and keys) the producer writes per simulated day: the
    records of a full day times the mean size of the first `sample` records."""
    records = list(itertools.islice(soak_records(self, 0), sample))
    mean = sum(len(r.payload) + len(r.key or b'') for r in records) / len(records)
    per_day = (self.dense + 1) * DAY_MS / self.dense_every_ms + \
        self.sparse * DAY_MS / self.sparse_every_ms
    return per_day * mean

  def stop_ms(self, start_ms: int) -> int:
    """When sensor 0 (dense) stops reporting: day 2, 06:00."""
    return start_ms + DAY_MS + DAY_MS // 4

  def late_start_ms(self, start_ms: int) -> int:
    """When the last sensor (dense) starts reporting: day 3, 06:00."""
    return start_ms + 2 * DAY_MS + DAY_MS // 4


class SoakRecord(NamedTuple):
  partition: int
  key: Optional[bytes]
  payload: bytes
  ts_ms: int
  reading: Optional[Reading]  # None for a malformed record
  reason: Optional[str] = None  # the dead-letter reason of a malformed record


def _sensor_records(plan: SoakPlan, index: int, start_ms: int,
                    spikes: Dict[int, float]) -> Iterator[Tuple[int, int, SoakRecord]]:
  """One sensor's readings in event-time order, as (ts_ms, index, record)."""
  rng = random.Random(plan.seed * 1_000 + index)
  model = SensorModel(rng, index)
  end_ms = start_ms + plan.span_ms
  if index < plan.dense or index == plan.sensors - 1:
    every = plan.dense_every_ms
    first = start_ms + index % plan.dense * every // plan.dense
  else:
    every = plan.sparse_every_ms
    first = start_ms + (index - plan.dense) * every // plan.sparse
  if index == 0:
    end_ms = min(end_ms, plan.stop_ms(start_ms))
  if index == plan.sensors - 1:
    first = plan.late_start_ms(start_ms) + every // (2 * plan.dense)
  for ts_ms in range(first, end_ms, every):
    value = round(model.value(rng, ts_ms / 1000.0) + spikes.get(ts_ms, 0.0), 4)
    payload = json.dumps({'sensor_id': model.sensor_id, 'value': value, 'ts': ts_ms}).encode()
    yield ts_ms, index, SoakRecord(index % PARTITIONS, model.sensor_id.encode(), payload,
                                   ts_ms, Reading(model.sensor_id, value, ts_ms))


def soak_records(plan: SoakPlan, start_ms: int) -> Iterator[SoakRecord]:
  """Every record of the soak in event-time order (so each partition is in order too)."""
  rng = random.Random(plan.seed)
  spikes: Dict[int, Dict[int, float]] = {}  # sensor index -> {ts_ms: added value}
  malformed = []
  for day in range(plan.days):
    day_ms = start_ms + day * DAY_MS
    for _ in range(plan.spikes_per_day):
      # On a reading of sensors 1..dense-1 (they report all week, on their 10 s grid).
      index = rng.randrange(1, plan.dense)
      first = start_ms + index * plan.dense_every_ms // plan.dense
      at = day_ms + rng.randrange(DAY_MS)
      at -= (at - first) % plan.dense_every_ms
      spikes.setdefault(index, {})[at] = rng.choice((-1, 1)) * rng.uniform(80.0, 160.0)
    for k in range(plan.malformed_per_day):
      payload, reason = MALFORMED_SAMPLES[rng.randrange(len(MALFORMED_SAMPLES))]
      at = day_ms + rng.randrange(DAY_MS)
      malformed.append((at, -1, SoakRecord((day + k) % PARTITIONS, None, payload, at, None,
                                           reason)))
  malformed.sort(key=lambda entry: entry[0])
  streams = [_sensor_records(plan, i, start_ms, spikes.get(i, {}))
             for i in range(plan.sensors)]
  for _, _, record in heapq.merge(malformed, *streams, key=lambda entry: entry[:2]):
    yield record


class Produced(NamedTuple):
  """What the producer wrote: the ground truth of the soak."""
  readings: List[Reading]
  malformed: List[Tuple[int, int, str]]  # (partition, offset, reason)
  per_partition: Dict[int, int]
  payload_bytes: int
  seconds: float


def produce(topic: str, records: Iterator[SoakRecord]) -> Produced:
  """Sends every record, each partition in order, and checks the broker took them all.

  Small batches: a fetch returns at least one whole batch, so the batch size is the grain of
  the pacer's quota."""
  producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=20, batch_size=16_384,
                           acks='all', enable_idempotence=True)
  failures = []
  readings, malformed_futures = [], []
  per_partition = {p: 0 for p in range(PARTITIONS)}
  payload_bytes = 0
  started = time.monotonic()
  try:
    for record in records:
      future = producer.send(topic, key=record.key, value=record.payload,
                             timestamp_ms=record.ts_ms, partition=record.partition)
      future.add_errback(failures.append)
      per_partition[record.partition] += 1
      payload_bytes += len(record.payload) + len(record.key or b'')
      if record.reading is None:
        malformed_futures.append((future, record.reason))
      else:
        readings.append(record.reading)
    producer.flush()
  finally:
    producer.close()
  if failures:
    raise RuntimeError(f'{len(failures)} records not produced, first: {failures[0]!r}')
  written = end_offsets(BOOTSTRAP, topic)
  if written != per_partition:
    raise RuntimeError(f'the topic holds {written} records per partition, sent {per_partition}')
  malformed = [(f.get().partition, f.get().offset, reason) for f, reason in malformed_futures]
  return Produced(readings, malformed, per_partition, payload_bytes,
                  time.monotonic() - started)


class Producing:
  """produce() in a thread: done() tells when it ended, result() returns (or raises) what
  it did."""

  def __init__(self, topic: str, records: Iterator[SoakRecord]):
    self._outcome: dict = {}
    self._thread = threading.Thread(target=self._produce, args=(topic, records),
                                    daemon=True, name='soak-producer')
    self._thread.start()

  def _produce(self, topic: str, records: Iterator[SoakRecord]) -> None:
    try:
      self._outcome['produced'] = produce(topic, records)
    except BaseException as error:  # pylint: disable=broad-except
      self._outcome['error'] = error

  def done(self) -> bool:
    return not self._thread.is_alive()

  def result(self, timeout_s: float = 600) -> Produced:
    self._thread.join(timeout_s)
    if 'error' in self._outcome:
      raise self._outcome['error']
    if 'produced' not in self._outcome:
      raise TimeoutError(f'the soak not produced after {timeout_s:.0f} s')
    return self._outcome['produced']


def keep_for_ever(topics: List[str]) -> None:
  """No retention and no time-based segment roll: the broker keeps records for 24 h
  (runners/kafka.sh) and rolls a segment whose first record is older than segment.ms, and
  the soak's records are days old from the start."""
  admin = kafka_topics.admin(BOOTSTRAP)
  try:
    admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                        configs={'retention.ms': '-1',
                                                 'segment.ms': str(365 * DAY_MS)})
                         for topic in topics])
  finally:
    admin.close()


class Pacer:
  """Holds the job's read of the backlog to the pace its slowest step keeps up with.

  A Kafka client quota (consumer_byte_rate) on the job's consumer client.id. Every
  `every_s` the rate is multiplied by `up` while the readings are less than half `lead_ms` of
  event time ahead of the slowest step's watermark, and by `down` while they are more than
  `lead_ms` ahead. The lead moves in steps (each grouping's watermark advances when its
  bundle ends), so the target is generous and the steps are small."""

  FETCH_BYTES = 8_192  # the job's fetches: small, so that the quota's throttling is smooth
  QUOTA_WINDOW_S = 11  # the broker's quota window (quota.window.num 11 x 1 s)

  def __init__(self, client_id: str, rate: float, lead_ms: int, every_s: float = 10.0,
               min_rate: float = 1_000.0, up: float = 1.2, down: float = 0.8):
    self.client_id = client_id
    self.rate = rate
    self.lead_ms = lead_ms
    self.every_s = every_s
    self.min_rate = min_rate
    self.up, self.down = up, down
    self._changed_at = time.monotonic()
    self._set(rate)

  def consumer_args(self) -> List[str]:
    return [f'--consumer_config=client.id={self.client_id}',
            f'--consumer_config=max.partition.fetch.bytes={self.FETCH_BYTES}',
            f'--consumer_config=fetch.max.bytes={self.FETCH_BYTES}']

  def adjust(self, lead_ms: Optional[int]) -> None:
    if lead_ms is None or time.monotonic() - self._changed_at < self.every_s:
      return
    self._changed_at = time.monotonic()
    if lead_ms > self.lead_ms:
      self._set(max(self.min_rate, self.rate * self.down))
    elif lead_ms < self.lead_ms / 2:
      self._set(self.rate * self.up)

  def pause(self, read_rate: Optional[float], seconds: float) -> None:
    """Stops the read for about `seconds` (then holds it well below `read_rate` until
    resume()): a quota the client's rate over the last quota window exceeds by
    `seconds / QUOTA_WINDOW_S` makes the broker throttle it for about `seconds`, during
    which it fetches nothing. `read_rate` is the bytes per second actually read (the job
    often reads below its quota, back-pressured); a deeper cut would stall the read for
    many windows whatever the quota becomes meanwhile (docs/state.md)."""
    rate = min(self.rate, read_rate) if read_rate else self.rate
    share = self.QUOTA_WINDOW_S / (self.QUOTA_WINDOW_S + seconds)
    self._set(max(self.min_rate, rate * share), remember=False)

  def resume(self) -> None:
    self._set(self.rate)

  def release(self) -> None:
    """No quota any more (the rest of the backlog is read at full speed)."""
    if not self._set(None):
      raise TimeoutError(f'the quota of {self.client_id} could not be removed')

  def _set(self, rate: Optional[float], remember: bool = True) -> bool:
    """Sets (or, for None, removes) the quota; False when the broker did not answer in time
    (the rate stays as it was)."""
    entry = AlterClientQuotasRequest.EntryData
    op = entry.OpData(key='consumer_byte_rate', value=float(round(rate or 0)),
                      remove=rate is None)
    request = AlterClientQuotasRequest(
        entries=[entry(entity=[entry.EntityData(entity_type='client-id',
                                                entity_name=self.client_id)], ops=[op])],
        validate_only=False)
    answer: dict = {}

    def send():
      # kafka-python's admin client has no quota call; its connection manager sends the
      # request. A fresh client each time, in a thread: one call hung for good here.
      admin = kafka_topics.admin(BOOTSTRAP)
      try:
        manager = admin._manager  # pylint: disable=protected-access
        answer['response'] = manager.run(manager.send, request)
      finally:
        admin.close()
    thread = threading.Thread(target=send, daemon=True, name='soak-quota')
    thread.start()
    thread.join(30)
    if 'response' not in answer:
      return False
    errors = [e.error_message or e.error_code for e in answer['response'].entries
              if e.error_code]
    if errors:
      raise RuntimeError(f'quota of {self.client_id} not set: {errors}')
    if rate is not None and remember:
      self.rate = rate
    return True


def watermarks(jid: str) -> Tuple[Optional[int], Optional[int]]:
  """(the readings' watermark, the slowest step's watermark) in ms, from Flink REST: the
  largest and the smallest input watermark of the job's non-source vertices (None until
  every subtask of each has one)."""
  lows = []
  for vertex in flink_rest.call(f'/jobs/{jid}', rest=REST)['vertices']:
    if vertex['name'].startswith('Source:'):
      continue
    values = [int(w['value']) for w in
              flink_rest.call(f"/jobs/{jid}/vertices/{vertex['id']}/watermarks", rest=REST)]
    if not values or min(values) < 0:
      return None, None
    lows.append(min(values))
  return (max(lows), min(lows)) if lows else (None, None)


def backlog_bytes(jid: str) -> Optional[float]:
  """Bytes the job's Kafka read still has to read, summed over partitions (Beam's
  KafkaSink_EstimatedBacklogSize metrics of the source); None before it reports them."""
  source = next(v for v in flink_rest.call(f'/jobs/{jid}', rest=REST)['vertices']
                if v['name'].startswith('Source:'))
  path = f"/jobs/{jid}/vertices/{source['id']}/metrics"
  names = [m['id'] for m in flink_rest.call(path, rest=REST)
           if 'EstimatedBacklogSize' in m['id']]
  if not names:
    return None
  values = flink_rest.call(f"{path}?get={urllib.parse.quote(','.join(names))}", rest=REST)
  return sum(float(m['value']) for m in values)


def heap_after_gc_mb(pid: int) -> float:
  """Heap used by a JVM right after a full collection (jcmd GC.run, then GC.heap_info)."""
  subprocess.run(['jcmd', str(pid), 'GC.run'], check=True, capture_output=True, timeout=120)
  info = subprocess.run(['jcmd', str(pid), 'GC.heap_info'], check=True, capture_output=True,
                        text=True, timeout=60).stdout
  used = re.search(r'heap\s+total \d+K, used (\d+)K', info)
  if not used:
    raise RuntimeError(f'no heap figure in jcmd {pid} GC.heap_info: {info[:500]}')
  return int(used.group(1)) / 1024


def worker_rss_mb() -> Dict[int, float]:
  """{pid: resident MB} of each Python SDK worker (the worker pool's descendants)."""
  rss = {}
  for pid in descendants(recorded_pid('worker-pool')):
    status = read_status(pid)
    if status and 'VmRSS' in status:
      rss[pid] = round(status['VmRSS'] / 1024, 1)
  return rss


def restarts(jid: str) -> int:
  """How often the job has restarted (from a checkpoint) so far."""
  metric = flink_rest.call(f'/jobs/{jid}/metrics?get=numRestarts', rest=REST)
  return int(float(metric[0]['value'])) if metric else 0


def other_jobs(jid: str) -> int:
  """Jobs other than jid running on the cluster: they share its heap and worker pool."""
  return sum(1 for job in flink_rest.call('/jobs/overview', rest=REST)['jobs']
             if job['jid'] != jid and job['state'] not in flink_rest.ENDED)


def code_version() -> dict:
  """The commit and the files changed since, of the tree the job's Python code comes from
  (the SDK workers import it), and when the cluster's JobManager, whose lib holds the Java
  runtime as built then (runners/cluster_lib.py), was started."""
  def git(*args):
    return subprocess.run(['git', *args], cwd=ROOT, capture_output=True, text=True).stdout
  lib = os.path.join(ROOT, '.local/flink/lib')
  return {'commit': git('rev-parse', 'HEAD').strip(),
          'changed': git('status', '--porcelain', '--untracked-files=no').splitlines(),
          'cluster_lib_made': _iso(int(os.path.getmtime(lib) * 1000))
                              if os.path.isdir(lib) else None}


def load_average() -> List[float]:
  return [round(x, 2) for x in os.getloadavg()]


class SoakRun:
  """Topics, the week of records, the paced job on the cluster, the per-day figures and the
  verdict."""

  def __init__(self, plan: SoakPlan = SoakPlan(), lead_ms: Optional[int] = None,
               margin_ms: int = 120_000, day_timeout_s: float = 1_800,
               baseline_lag_ms: int = round(DEFAULT_TRAILING_LAG_S * 1000),
               job_args: List[str] = (), log=print):
    """lead_ms: how far the readings may run ahead of their baselines (event time; default
    LEAD_PERIODS periods);
    margin_ms: how long before now the soak's event time ends; day_timeout_s: the longest
    a simulated day may take before the run gives up."""
    self.plan = plan
    self.lead_ms = lead_ms or LEAD_PERIODS * plan.period_ms
    self.margin_ms = margin_ms
    self.day_timeout_s = day_timeout_s
    self.baseline_lag_ms = baseline_lag_ms
    self.job_args = list(job_args)
    self.log = log
    self.days: List[dict] = []
    self.report: dict = {'plan': plan._asdict(), 'job_args': self.job_args,
                         'baseline_lag_ms': baseline_lag_ms, 'lead_ms': self.lead_ms,
                         'code': code_version(), 'cores': os.cpu_count(),
                         'load_average_before': load_average(), 'days': self.days}
    self.job: Optional[JobRun] = None

  def run(self) -> dict:
    """The whole soak; returns the report (also on failure, with 'error' set) after writing
    it to .local/soak."""
    started = time.monotonic()
    try:
      self._run(started)
    except BaseException as error:  # the report says how far it got
      self.report['error'] = f'{type(error).__name__}: {error}'
      raise
    finally:
      self.report['wall_s'] = round(time.monotonic() - started, 1)
      self.report['load_average_after'] = load_average()
      try:
        self.close()
      finally:
        self.report['json'] = write_report(self.report)
    return self.report

  def _run(self, started: float) -> None:
    plan = self.plan
    now_ms = int(time.time() * 1000)
    self.start_ms = now_ms - now_ms % 60_000 - plan.span_ms - self.margin_ms
    self.report['event_start'] = _iso(self.start_ms)
    self.job = JobRun('cluster', readings_partitions=PARTITIONS)
    keep_for_ever(list(self.job.topics.values()))
    t0 = time.monotonic()
    # The job reads while the rest is produced: the producer writes days in seconds, the
    # paced read takes about a minute a day, so the read never reaches the topic's end.
    producing = Producing(self.job.topics['readings'], soak_records(plan, self.start_ms))
    # About a day a minute to start with; the pacer finds the job's pace from there.
    self.pacer = Pacer(f'soak-{self.job.suffix}', rate=plan.bytes_per_day() / 60,
                       lead_ms=self.lead_ms)
    self.job.start([f'--flink_master={REST}', f'--environment_config={WORKER_POOL}',
                    f'--baseline_lag={self.baseline_lag_ms / 1000:g}',
                    *self.pacer.consumer_args(), *plan.window_args(), *self.job_args])
    self.jid = wait_for(
        lambda: (flink_rest.job_by_name(self.job.job_name, REST) or {}).get('jid'),
        120, f'{self.job.job_name} in Flink at {REST}')
    self.job_started = time.monotonic()
    self.report['startup_s'] = round(self.job_started - t0, 1)
    self._follow_days(producing)
    self.pacer.release()
    self._check_outputs()
    self.report['total_s'] = round(time.monotonic() - started, 1)

  def _follow_days(self, producing: 'Producing') -> None:
    """Paces the read and records each day's figures once the baselines have passed its
    end; takes what was produced once the producer is done."""
    day = 1
    last_day_at = logged_at = self.job_started
    while day <= self.plan.days:
      self.raise_if_failed()
      if producing is not None and producing.done():
        self._take_produced(producing.result())
        producing = None
      low, lead = self._progress()
      self.pacer.adjust(lead)
      now = time.monotonic()
      if now - logged_at >= 60 and low is not None:
        logged_at = now
        self.log(f'soak: {now - self.job_started:.0f} s: baselines at day '
                 f'{(low - self.start_ms) / DAY_MS + 1:.2f}, readings {lead / 60_000:.0f} min '
                 f'ahead, rate {self.pacer.rate / 1024:.1f} KiB/s')
      if low is not None and low >= self.start_ms + day * DAY_MS:
        row = self._measure(day, now - last_day_at, now - self.job_started)
        self.log(f"soak: day {day} passed after {row['wall_s']:.0f} s: state "
                 f"{_mb(row.get('state_mb'))} MB, heap {row['heap_mb']:.0f} MB, SDK workers "
                 f"{row['worker_rss_mb']:.0f} MB (paused {row['pause_s']:.0f} s, "
                 f"{'still' if row['still'] else 'NOT still'})")
        last_day_at = time.monotonic()
        day += 1
      elif now - last_day_at > self.day_timeout_s:
        raise TimeoutError(f'day {day} not passed after {self.day_timeout_s:.0f} s '
                           f'(baselines at {_iso(low) if low else None})')
      time.sleep(2)

    if producing is not None:
      self._take_produced(producing.result())

  def _take_produced(self, produced: 'Produced') -> None:
    self.produced = produced
    self.report['produce_s'] = round(produced.seconds, 1)
    self.report['readings'] = len(produced.readings)
    self.report['malformed'] = len(produced.malformed)
    self.log(f'soak: produced {len(produced.readings):,} readings and '
             f'{len(produced.malformed)} malformed records of {self.plan.days} days, '
             f'{self.plan.sensors} sensors, in {self.report["produce_s"]} s')

  def _progress(self) -> Tuple[Optional[int], Optional[int]]:
    """(the time up to which the slots' baselines exist, how far the readings are ahead of
    it), in ms of event time; None before every step has a watermark."""
    high, low = watermarks(self.jid)
    if low is None:
      return None, None
    # The baselines' path runs `lag` behind the readings by design (its elements carry the
    # time of the slot they judge, `lag` earlier).
    low += self.baseline_lag_ms
    return low, high - low

  def _read_rate(self, over_s: float = 3.0) -> Optional[float]:
    """Bytes per second the job reads now, from its Kafka read's backlog metric (Beam's
    per-partition EstimatedBacklogSize) over `over_s`; None when the metric is missing."""
    first = backlog_bytes(self.jid)
    time.sleep(over_s)
    last = backlog_bytes(self.jid)
    if first is None or last is None or last > first:
      return None
    return (first - last) / over_s

  def _still(self) -> bool:
    """Whether nothing moves: the read's backlog and every step's watermark the same over
    STILL_POLLS polls a second apart (the read is paused and the job has done all it can)."""
    seen = []
    for _ in range(STILL_POLLS):
      seen.append((backlog_bytes(self.jid), watermarks(self.jid)))
      time.sleep(1)
    return all(sample == seen[0] for sample in seen)

  def _measure(self, day: int, wall_s: float, since_start_s: float) -> dict:
    """The day's figures, taken with the read paused and the job still: otherwise the
    checkpoint and the heap also hold however many readings are in flight at that moment
    (docs/state.md), which depends on the moment, not on the job's age."""
    paused_at = time.monotonic()
    self.pacer.pause(self._read_rate(), PAUSE_S)
    try:
      try:
        wait_for(self._still, PAUSE_S * 3, 'the read to pause and the job to go still',
                 interval_s=0)
        still = True
      except TimeoutError:
        still = False  # measured anyway; the row says so
      backlog = backlog_bytes(self.jid)
      taskmanagers = sorted(flink_rest.job_taskmanagers(self.jid, REST))
      heaps = {tm: round(heap_after_gc_mb(recorded_pid(tm)), 1) for tm in taskmanagers}
      workers = worker_rss_mb()
      at_ms = int(time.time() * 1000)
      try:
        checkpoint = flink_rest.call(
            f'/jobs/{self.jid}/checkpoints/details/'
            f'{flink_rest.trigger_checkpoint(self.jid, REST)}', rest=REST)
      except flink_rest.FlinkRestError:
        checkpoint = None  # the row has no checkpoint figures, and the verdict says so
      # Still paused when the figures were taken: the read did not move meanwhile.
      still = still and backlog_bytes(self.jid) == backlog
      lead = self._progress()[1]
    finally:
      self.pacer.resume()
    row = {'day': day, 'at_ms': at_ms, 'wall_s': round(wall_s, 1),
           'since_job_start_s': round(since_start_s, 1),
           'pause_s': round(time.monotonic() - paused_at, 1), 'still': still,
           'lead_min_at_measure': None if lead is None else round(lead / 60_000, 1),
           'heap_mb': round(sum(heaps.values()), 1), 'heap_mb_by_taskmanager': heaps,
           'worker_rss_mb': round(sum(workers.values()), 1),
           'worker_rss_mb_by_pid': workers, 'pace_bytes_per_s': round(self.pacer.rate),
           'other_jobs_on_cluster': other_jobs(self.jid), 'restarts': restarts(self.jid)}
    if checkpoint:
      _add_checkpoint(row, checkpoint, self._vertex_names())
    self.days.append(row)
    return row

  def _vertex_names(self) -> Dict[str, str]:
    return {vertex['id']: vertex['name'][:80]
            for vertex in flink_rest.call(f'/jobs/{self.jid}', rest=REST)['vertices']}

  def _check_outputs(self) -> None:
    """Waits for every expected output, then compares them with the truth."""
    readings = self.produced.readings
    expected = expected_alert_ids(readings, self.plan.size_ms, self.plan.period_ms, 50.0,
                                  lag_ms=self.baseline_lag_ms)
    malformed = {(p, o, reason) for p, o, reason in self.produced.malformed}

    def complete():
      self.raise_if_failed()
      ids = {a['alert_id'] for a in self.job.read('alerts')}
      return expected <= ids and len(self.dead_letter_keys()) >= len(malformed)
    t0 = time.monotonic()
    wait_for(complete, 600, f'{self.job.job_name}: every expected alert and dead letter')
    time.sleep(5)  # anything unexpected gets a chance to show up
    self.report['drain_s'] = round(time.monotonic() - t0, 1)
    alerts = self.job.read('alerts')
    ids = {a['alert_id'] for a in alerts}
    dead = self.dead_letter_keys()
    late = sum(end_offsets(BOOTSTRAP, self.job.topics['late']).values())
    days_with_alerts = sorted({(a_ms - self.start_ms) // DAY_MS + 1 for a_ms in
                               (_epoch_ms(a['ts']) for a in alerts)})
    self.report['outputs'] = {
        'expected_alerts': len(expected), 'alerts': len(alerts), 'distinct_alerts': len(ids),
        'missing_alerts': sorted(expected - ids)[:10],
        'unexpected_alerts': sorted(ids - expected)[:10],
        'days_with_alerts': days_with_alerts,
        'dead_letters': sum(dead.values()), 'distinct_dead_letters': len(dead),
        'expected_dead_letters': len(malformed),
        'dead_letters_exact': set(dead) == malformed, 'late_readings': late,
        'alerts_exact': ids == expected}

  def dead_letter_keys(self) -> Counter:
    return Counter((d['source']['partition'], d['source']['offset'], d['reason'])
                   for d in self.job.read('dead'))

  def raise_if_failed(self) -> None:
    job = flink_rest.job_by_name(self.job.job_name, REST)
    if job is not None and job['state'] in flink_rest.ENDED:
      raise AssertionError(f'{self.job.job_name} ended: {job["state"]}; last failure: '
                           f'{flink_rest.root_exception(job["jid"], REST)}')

  def close(self) -> None:
    if self.job is None:
      return
    try:
      if getattr(self, 'pacer', None):
        self.pacer.release()
    finally:
      job = flink_rest.job_by_name(self.job.job_name, REST)
      if job and job['state'] not in flink_rest.ENDED:
        flink_rest.cancel(job['jid'], REST)
        flink_rest.wait_ended(job['jid'], REST)
      self.job.result = None  # cancelled above, through REST
      self.job.close()
      self.job = None


def _add_checkpoint(row: dict, checkpoint: dict, names: Dict[str, str]) -> None:
  """The checkpoint's figures into the row, with each step's share of the state (MB)."""
  row['checkpoint'] = {k: checkpoint.get(k) for k in (
      'id', 'trigger_timestamp', 'state_size', 'checkpointed_size', 'persisted_data',
      'processed_data', 'end_to_end_duration', 'checkpoint_type')}
  row['checkpoint']['state_mb_by_step'] = {
      names.get(vertex, vertex): round(_state_mb(task), 3)
      for vertex, task in (checkpoint.get('tasks') or {}).items()}
  row['state_mb'] = round(_state_mb(checkpoint), 2)


def _state_mb(figures: dict) -> float:
  """State in a checkpoint's (or one step's) figures without the in-flight buffers, MB."""
  return (figures.get('state_size', 0) - (figures.get('persisted_data') or 0)) / MB


def verdict(report: dict) -> List[str]:
  """What fails the soak (empty when it passes): growth from day 1 to the last day above
  GROWTH_LIMIT of any GROWTH_FIGURES, inexact outputs, or an error."""
  problems = []
  if report.get('error'):
    problems.append(report['error'])
  days = report['days']
  if len(days) < report['plan']['days']:
    problems.append(f"{len(days)} of {report['plan']['days']} days recorded")
  elif days:
    first, last = days[0], days[-1]
    for figure in GROWTH_FIGURES:
      if first.get(figure) is None or last.get(figure) is None:
        problems.append(f'{figure} missing')
      elif last[figure] > first[figure] * (1 + GROWTH_LIMIT):
        problems.append(f'{figure} grew {last[figure] / first[figure] - 1:+.0%} from day 1 '
                        f'({first[figure]}) to day {last["day"]} ({last[figure]})')
  outputs = report.get('outputs')
  if outputs is None:
    problems.append('outputs not checked')
  else:
    if not outputs['alerts_exact']:
      problems.append(f"alerts not exact: missing {outputs['missing_alerts']}, "
                      f"unexpected {outputs['unexpected_alerts']}")
    if not outputs['dead_letters_exact']:
      problems.append('dead letters are not exactly the malformed records')
    if outputs['late_readings']:
      problems.append(f"{outputs['late_readings']} late readings")
  return problems


def table(report: dict) -> str:
  """The per-day figures as a text table."""
  lines = ['day  wall s  since start s  state MB  checkpointed MB  in-flight MB  heap MB  '
           'SDK workers MB']
  for row in report['days']:
    checkpoint = row.get('checkpoint') or {}
    lines.append(
        f"{row['day']:>3}  {row['wall_s']:>6.0f}  {row['since_job_start_s']:>13.0f}  "
        f"{_mb(row.get('state_mb')):>8}  {_mb(checkpoint.get('checkpointed_size'), MB):>15}  "
        f"{_mb(checkpoint.get('persisted_data'), MB):>12}  {row['heap_mb']:>7.0f}  "
        f"{row['worker_rss_mb']:>14.0f}")
  return '\n'.join(lines)


def _mb(value, unit: float = 1) -> str:
  return '-' if value is None else f'{value / unit:.1f}'


def _iso(ms: int) -> str:
  return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec='seconds')


def _epoch_ms(iso: str) -> int:
  return int(datetime.fromisoformat(iso.replace('Z', '+00:00')).timestamp() * 1000)


def write_report(report: dict) -> str:
  """Writes the report to .local/soak/soak-<UTC time>.json and latest.json; returns the
  first path."""
  os.makedirs(SOAK_DIR, exist_ok=True)
  stamp = datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')
  path = os.path.join(SOAK_DIR, f'soak-{stamp}.json')
  report['verdict'] = verdict(report)
  text = json.dumps(report, indent=1, sort_keys=True, default=str)
  for target in (path, os.path.join(SOAK_DIR, 'latest.json')):
    with open(target, 'w', encoding='utf-8') as handle:
      handle.write(text + '\n')
  return path


def main(argv: Optional[List[str]] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--days', type=int, default=SoakPlan().days,
                      help='simulated days (default %(default)s)')
  parser.add_argument('--period_s', type=float, default=SoakPlan().period_ms / 1000,
                      help="the job's --window_period in seconds, its windows twice that "
                      '(default %(default)s; the job\'s default is 5)')
  parser.add_argument('--lead_min', type=float, default=None,
                      help='minutes of event time the read may be ahead of the slowest step '
                      f'(default {LEAD_PERIODS} periods)')
  parser.add_argument('--baseline_lag_s', type=float, default=DEFAULT_TRAILING_LAG_S,
                      help="the job's --baseline_lag in seconds, which the oracle follows "
                      '(default %(default)s, the job\'s)')
  parser.add_argument('job_args', nargs='*', help='more job options, after --')
  args = parser.parse_args(argv)
  run = SoakRun(SoakPlan(days=args.days, period_ms=round(args.period_s * 1000)),
                lead_ms=round(args.lead_min * 60_000) if args.lead_min else None,
                baseline_lag_ms=round(args.baseline_lag_s * 1000), job_args=args.job_args)
  try:
    report = run.run()
  except Exception:  # pylint: disable=broad-except
    traceback.print_exc()
    report = run.report
  print(table(report))
  print(json.dumps(report.get('outputs'), indent=1))
  print(f"soak: {report.get('json')}; wall {report.get('wall_s')} s; verdict: "
        + ('pass' if not report['verdict'] else '; '.join(report['verdict'])))
  return 0 if not report['verdict'] else 1


if __name__ == '__main__':
  sys.exit(main())
