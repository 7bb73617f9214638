"""`make demo`: the job end to end on real Kafka and Flink, with live alerts and a score.

Starts what is missing (Kafka, topics, the KafkaIO expansion service and, with
--flink cluster, the standalone Flink cluster), submits the job (embedded Flink by
default), runs the simulator into the readings topic, prints every alert as it arrives
from the alerts topic, and one progress line. Ctrl-C or --duration ends it; it then stops
the job and every service it started, and prints as its very last line:

  demo summary: readings=<n> injected=<n> detected=<n> false_alerts=<n> dead_letters=<n>

detected = injected anomalies that got an alert; false_alerts = alerts on readings that
were neither injected anomalies nor readings right after an injected level shift.
"""

import argparse
import calendar
import json
import logging
import os
import signal
import sys
import threading
import time
import uuid
from typing import Dict, List, Optional

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from pipeline.main import run
from runners import kafka_topics
from runners.flink_options import MODES, flink_args
from runners.monitor import format_alert
from runners.services import Services
from runners.simulator import generate, produce
from runners.topic_reader import end_offsets
from transforms.judge import alert_id
from transforms.records import Reading

BOOTSTRAP = '127.0.0.1:9092'
TOPICS = {'readings': 'sensor-readings', 'alerts': 'anomaly-alerts',
          'window_stats': 'window-stats', 'dead_letters': 'dead-letters', 'late': 'late-readings'}
ANOMALY_KINDS = ('spike', 'dip', 'level_shift')
UNTIL_CTRL_C_S = 3600  # without --duration the simulator runs for an hour at most


class Tally:
  """What the simulator produced and what came back, shared by the demo's threads."""

  def __init__(self):
    self.lock = threading.Lock()
    self.produced = 0
    self.readings = 0
    self.injected: Dict[str, dict] = {}  # alert_id -> truth of injected anomalies
    self.expected: set = set()  # alert ids of readings right after a level shift
    self.malformed = 0
    self.alerts: Dict[str, dict] = {}
    self.dead_letters = 0
    self.newest_window_end: Optional[str] = None
    self.first_alert_s: Optional[float] = None

  def on_record(self, record) -> None:
    with self.lock:
      self.produced += 1
      if record.kind == 'malformed':
        self.malformed += 1
        return
      self.readings += 1
      if record.kind in ANOMALY_KINDS or record.kind == 'shifted':
        aid = alert_id(Reading(record.sensor_id, record.value, record.ts_ms))
        if record.kind == 'shifted':
          self.expected.add(aid)
        else:
          self.injected[aid] = {'kind': record.kind, 'sensor_id': record.sensor_id}

  def score(self) -> Dict[str, int]:
    with self.lock:
      detected = sum(1 for aid in self.injected if aid in self.alerts)
      false_alerts = sum(1 for aid in self.alerts
                         if aid not in self.injected and aid not in self.expected)
      return {'readings': self.readings, 'injected': len(self.injected), 'detected': detected,
              'false_alerts': false_alerts, 'dead_letters': self.dead_letters,
              'alerts': len(self.alerts),
              'after_shift': sum(1 for aid in self.alerts if aid in self.expected)}


def follow_outputs(tally: Tally, start: Dict[str, Dict[int, int]], stop: threading.Event,
                   started_at: float, quiet: bool) -> None:
  """Consumes alerts, dead letters and window statistics from the offsets at the demo's start."""
  consumer = KafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False)
  partitions = [TopicPartition(TOPICS[name], p)
                for name in ('alerts', 'dead_letters', 'window_stats') for p in start[name]]
  consumer.assign(partitions)
  for tp in partitions:
    name = next(k for k, v in TOPICS.items() if v == tp.topic)
    consumer.seek(tp, start[name][tp.partition])
  try:
    while not stop.is_set():
      for tp, batch in consumer.poll(timeout_ms=500).items():
        for record in batch:
          _take(tally, tp.topic, json.loads(record.value), started_at, quiet)
  finally:
    consumer.close()


def _take(tally: Tally, topic: str, message: dict, started_at: float, quiet: bool) -> None:
  with tally.lock:
    if topic == TOPICS['alerts']:
      if message['alert_id'] in tally.alerts:
        return
      tally.alerts[message['alert_id']] = message
      if tally.first_alert_s is None:
        tally.first_alert_s = time.monotonic() - started_at
      truth = tally.injected.get(message['alert_id'])
      label = truth['kind'] if truth else (
          'after level shift' if message['alert_id'] in tally.expected else 'NOT INJECTED')
    elif topic == TOPICS['dead_letters']:
      tally.dead_letters += 1
      return
    else:
      end = message.get('window_end')
      if end and (tally.newest_window_end is None or end > tally.newest_window_end):
        tally.newest_window_end = end
      return
  if not quiet:
    print('\r\033[K' + format_alert(message, label), flush=True)


def progress_line(tally: Tally, rate: float) -> str:
  s = tally.score()
  lag = '-'
  if tally.newest_window_end:
    end = calendar.timegm(time.strptime(tally.newest_window_end[:19], '%Y-%m-%dT%H:%M:%S'))
    lag = '%.0fs' % max(0.0, time.time() - end)
  return ('readings/s=%.0f readings=%d alerts=%d dead_letters=%d lag=%s' % (
      rate, s['readings'], s['alerts'], s['dead_letters'], lag))


def job_args(args: argparse.Namespace, start_ms: int, run_id: str) -> List[str]:
  return flink_args(args.flink, f'anomaly-demo-{run_id}') + [
      f'--bootstrap_servers={BOOTSTRAP}',
      f"--readings_topic={TOPICS['readings']}",
      f"--alerts_topic={TOPICS['alerts']}",
      f"--window_stats_topic={TOPICS['window_stats']}",
      f"--dead_letters_topic={TOPICS['dead_letters']}",
      f"--late_topic={TOPICS['late']}",
      f'--group_id=anomaly-demo-{run_id}',
      f'--start_read_time={start_ms}',
  ] + args.job_args


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--flink', choices=MODES, default='embedded',
                      help='embedded (Flink MiniCluster, default) or cluster (standalone)')
  parser.add_argument('--duration', type=float, default=0,
                      help='seconds of simulated readings; 0 = until Ctrl-C, at most an hour '
                      '(default 0)')
  parser.add_argument('--sensors', type=int, default=10, help='sensors (default 10)')
  parser.add_argument('--rate', type=float, default=50.0,
                      help='readings per second, all sensors (default 50)')
  parser.add_argument('--drain', type=float, default=30.0,
                      help='seconds to wait for the last alerts after the simulator stops '
                      '(default 30)')
  parser.add_argument('--seed', type=int, default=1,
                      help='seed of the simulated readings, anomalies and malformed records '
                      '(default 1: the same data each run)')
  parser.add_argument('--quiet', action='store_true', help='no alert lines, progress only')
  parser.add_argument('job_args', nargs='*', help='extra options for the job, after --')
  args = parser.parse_args(argv)
  logging.basicConfig(level=logging.WARNING)

  stop = threading.Event()
  signal.signal(signal.SIGINT, lambda *_: stop.set())
  signal.signal(signal.SIGTERM, lambda *_: stop.set())
  services = Services()
  tally = Tally()
  result = None
  started_at = time.monotonic()
  threads = []
  try:
    print('demo: starting Kafka and the KafkaIO expansion service'
          + (' and the Flink cluster' if args.flink == 'cluster' else ''), flush=True)
    for script in ('kafka.sh', 'expansion_service.sh') + (
        ('flink_cluster.sh',) if args.flink == 'cluster' else ()):
      services.ensure(script)
    admin = kafka_topics.admin(BOOTSTRAP)
    kafka_topics.create(admin, {name: 4 if key == 'readings' else 1 for key, name in TOPICS.items()})
    admin.close()
    start = {name: end_offsets(BOOTSTRAP, TOPICS[name])
             for name in ('alerts', 'dead_letters', 'window_stats')}
    run_id = uuid.uuid4().hex[:6]
    start_ms = int(time.time() * 1000)
    print(f'demo: submitting the job to Flink ({args.flink})', flush=True)
    result = run(job_args(args, start_ms, run_id), wait=False)

    follower = threading.Thread(target=follow_outputs, daemon=True,
                                args=(tally, start, stop, started_at, args.quiet))
    follower.start()
    threads.append(follower)
    total = int(args.rate * (args.duration or UNTIL_CTRL_C_S))
    records = generate(args.sensors, total, args.rate, int(time.time() * 1000) + 2000,
                       anomalies=max(1, total // 500), malformed=total // 200,
                       seed=args.seed, shift_settle_s=15.0)
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=20, acks='all')

    def simulate():
      def on_record(record):
        tally.on_record(record)
        if stop.is_set():
          raise _Stop()
      try:
        produce(producer, TOPICS['readings'], records, pace=True, on_record=on_record)
      except _Stop:
        pass
      finally:
        producer.close()
    simulator = threading.Thread(target=simulate, daemon=True)
    simulator.start()
    threads.append(simulator)
    print(f'demo: simulator writing {args.sensors} sensors at {args.rate:g} readings/s to '
          f"{TOPICS['readings']}; alerts below (Ctrl-C to stop)", flush=True)

    last_count, last_t = 0, time.monotonic()
    drain_until = None
    while not stop.is_set():
      time.sleep(1)
      now = time.monotonic()
      rate = (tally.readings - last_count) / (now - last_t)
      last_count, last_t = tally.readings, now
      sys.stdout.write('\r\033[K' + progress_line(tally, rate))
      sys.stdout.flush()
      if result.state in ('FAILED', 'CANCELLED', 'DONE'):
        print(f'\ndemo: the job ended: {result.state}', flush=True)
        break
      if not simulator.is_alive() and drain_until is None:
        drain_until = now + args.drain
      if drain_until and (now > drain_until or _all_seen(tally)):
        break
    print('', flush=True)
  finally:
    stop.set()
    if result is not None and result.state not in ('FAILED', 'CANCELLED', 'DONE'):
      print('demo: stopping the job', flush=True)
      try:
        result.cancel()
      except Exception as error:  # pylint: disable=broad-except
        print(f'demo: cancel failed: {error}', flush=True)
    for thread in threads:
      thread.join(timeout=5)
    if services.started:
      print('demo: stopping ' + ', '.join(services.started), flush=True)
    services.stop_started()
  s = tally.score()
  if tally.first_alert_s is not None:
    print('demo: first alert %.0f s after start; %d alerts on readings right after a level '
          'shift (expected, not counted as false)' % (tally.first_alert_s, s['after_shift']))
  print('demo summary: readings=%(readings)d injected=%(injected)d detected=%(detected)d '
        'false_alerts=%(false_alerts)d dead_letters=%(dead_letters)d' % s, flush=True)
  return 0


class _Stop(Exception):
  """Ends the simulator's loop from its record callback."""


def _all_seen(tally: Tally) -> bool:
  """Every injected anomaly and every malformed record is accounted for."""
  s = tally.score()
  return s['detected'] == s['injected'] and s['dead_letters'] >= tally.malformed


if __name__ == '__main__':
  os.environ.setdefault('PYTHONUNBUFFERED', '1')
  sys.exit(main())
