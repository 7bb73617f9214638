"""One benchmark trial: one job at one offered rate, measured; one JSON document out.

  python -m bench.trial --mode embedded --rate 2000 --sensors 1000 [--parallelism 1] \
      [--job anomaly|beam_zscore|java] [--bootstrap 127.0.0.1:9192] \
      [--expansion_service localhost:8197] [--out t.json] [-- extra job options]

--job picks the job under test (bench/job.py): ours (default), Beam's ZScore, or the
original Java job (on the cluster only, fed CSV). Each gets the same load, the same lag
verdict, the same latency, CPU and RSS measurement; only how far it has read is counted
differently (its own counter, or for the Java job its source vertex's records out).

Before the load, a primer: a two-second burst of readings that the job must have read
before the load starts (prime()), so that the job's startup is not part of the trial.
Timeline (seconds from the load's start): 0..warmup the job fills its first 60 s window and
starts judging (not measured); warmup..warmup+measure the lag is judged (bounded or not,
bench.analysis.lag_verdict); then the load stops and the job gets `drain` seconds to
emit the alerts of the last readings. Latency is measured for the readings of the measuring
window except its last `latency_tail` seconds, so that every one of them had at least
latency_tail + drain seconds (the report's `horizon_s`) to be alerted.

Every trial runs in its own process (bench.measure starts them): on embedded Flink, Beam
keeps the job server JVM until the submitting process exits and runs the Python workers
inside it, so a fresh process per trial gives each trial its own JVM, its own workers and
its own peak RSS, and nothing survives a trial.

Samples: Flink's REST API refreshes metrics at most every 10 s (metrics.fetcher.update-
interval), fetching when a request comes after that; polling every 0.5 s and keeping a
sample only when the counter changed (or 12 s passed) gives counter values that were
current when taken, each paired with the produced offsets read at the same moment.
"""

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from datetime import datetime
from typing import Dict, List, Optional, Sequence, Set, Tuple

from kafka import KafkaConsumer, TopicPartition

from bench import flink_rest, rss
from bench.analysis import Sample, lag_verdict, latency_summary, matched_latencies
from bench.job import JOBS, TERMINAL, describe, load_format, make_job
from runners.topic_reader import read_topic

log = logging.getLogger('bench.trial')
# The primer (prime()): this many seconds of readings at up to this rate, read within the
# timeout.
PRIMER_S, PRIMER_RPS, PRIMER_TIMEOUT_S = 2.0, 1000.0, 180.0
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Offsets:
  """Sum of the end offsets of a topic's partitions, with one long-lived consumer."""

  def __init__(self, bootstrap: str, topic: str, partitions: int):
    self._consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    self._partitions = [TopicPartition(topic, p) for p in range(partitions)]

  def produced(self) -> int:
    return sum(self._consumer.end_offsets(self._partitions).values())

  def at(self, ts_ms: int) -> Dict[int, int]:
    """{partition: offset of its first record stamped ts_ms or later} (the end when none)."""
    found = self._consumer.offsets_for_times({tp: ts_ms for tp in self._partitions})
    ends = self._consumer.end_offsets(self._partitions)
    return {tp.partition: found[tp].offset if found.get(tp) else ends[tp]
            for tp in self._partitions}

  def close(self) -> None:
    self._consumer.close()


def iso_to_ms(text: str) -> int:
  return int(datetime.fromisoformat(text.replace('Z', '+00:00')).timestamp() * 1000)


def alert_latencies(records, from_ms: int, to_ms: int) -> List[int]:
  """Alert Kafka timestamp - the alerting reading's ts (= its produce timestamp: the load
  generator gives a record the same time as its Kafka timestamp and its `ts`), for
  readings produced in [from_ms, to_ms). The alert's timestamp is KafkaIO's producer's
  CreateTime, i.e. when it was sent (checked: 0.3-2.8 s after the alert's detected_at)."""
  out = []
  for record in records:
    ts = iso_to_ms(json.loads(record.value)['ts'])
    if from_ms <= ts < to_ms:
      out.append(record.timestamp - ts)
  return out


def latency_parts(records, from_ms: int, to_ms: int) -> Dict[str, List[int]]:
  """Where the latency of our alerts goes: 'detect', the reading's ts to the alert's
  detected_at (Kafka in, through the job, to the step that raised it), and 'publish',
  detected_at to the alert's Kafka timestamp (the write to Kafka). Alerts without a
  detected_at (other jobs') are left out."""
  parts: Dict[str, List[int]] = {'detect': [], 'publish': []}
  for record in records:
    alert = json.loads(record.value)
    ts = iso_to_ms(alert['ts'])
    if from_ms <= ts < to_ms and 'detected_at' in alert:
      detected_ms = iso_to_ms(alert['detected_at'])
      parts['detect'].append(detected_ms - ts)
      parts['publish'].append(record.timestamp - detected_ms)
  return parts


def csv_alerts(records) -> List[Tuple[str, float, int]]:
  """(sensor_id, value, Kafka timestamp) of the original job's alerts, which carry no time
  of their reading."""
  return [(alert['sensor_id'], float(alert['value']), record.timestamp)
          for record in records for alert in [json.loads(record.value)]]


def csv_sent_times(bootstrap: str, topic: str, start: Dict[int, int], end: Dict[int, int],
                   wanted: Set[Tuple[str, float]]) -> Dict[Tuple[str, float], List[int]]:
  """Kafka timestamps of the CSV readings in [start, end) offsets whose (sensor, value) is
  in wanted, read as a stream (a minute of readings at 20,000/s is too many to hold)."""
  sensors = {sensor.encode() for sensor, _ in wanted}
  sent: Dict[Tuple[str, float], List[int]] = {}
  pending = {p for p in start if start[p] < end[p]}
  consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                           consumer_timeout_ms=15_000)
  try:
    consumer.assign([TopicPartition(topic, p) for p in pending])
    for p in pending:
      consumer.seek(TopicPartition(topic, p), start[p])
    for record in consumer:  # ends when every partition is read, or after 15 s of silence
      if record.offset >= end[record.partition] - 1:
        pending.discard(record.partition)
      sensor, _, value = record.value.partition(b',')
      if sensor in sensors and record.offset < end[record.partition]:
        key = (sensor.decode(), float(value))
        if key in wanted:
          sent.setdefault(key, []).append(record.timestamp)
      if not pending:
        break
  finally:
    consumer.close()
  return sent


def spike_every(rate: float, sensors: int, interval_s: float) -> int:
  """Every how many readings of a sensor a spike comes, for one per sensor per interval_s:
  a sensor gets rate / sensors readings/s."""
  return max(2, round(interval_s * rate / sensors))


def start_load(args, topic: str, duration_s: float,
               rate: Optional[float] = None) -> subprocess.Popen:
  rate = args.rate if rate is None else rate
  cmd = [sys.executable, '-m', 'bench.load', '--bootstrap', args.bootstrap, '--topic', topic,
         '--partitions', str(args.partitions), '--sensors', str(args.sensors),
         '--rate', str(rate), '--duration', str(duration_s),
         '--spike_every', str(spike_every(rate, args.sensors, args.spike_interval)),
         '--engine', args.load_engine, '--format', load_format(args.job)]
  return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)


def wait_consumed(job, reader, offsets, timeout_s: float, poll_s: float = 0.5) -> int:
  """Waits until the job's counter has caught up with every record produced so far (the
  job has started reading and its whole path is up); that count."""
  produced = offsets.produced()
  deadline = time.monotonic() + timeout_s
  while True:
    if job.state() in TERMINAL:
      raise RuntimeError(f'job ended while priming: {job.state()}')
    try:
      if reader.read()[job.consumed_counter] >= produced:
        return produced
    except OSError as error:
      log.warning('REST read failed: %s', error)
    if time.monotonic() > deadline:
      raise RuntimeError(f'the job did not read the {produced} primer readings in '
                         f'{timeout_s:.0f} s')
    time.sleep(poll_s)


def prime(args, job, reader, offsets) -> Dict:
  """A short burst of readings before the trial's load, and a wait until the job has read
  them: only then does the load start. Without it the readings produced while the job's
  path starts up (its Python workers, the first bundles: ~15 s on the cluster) became a
  backlog that a job near its limit could not work off within the warmup, and a rate it
  sustained was judged by its startup."""
  started = time.monotonic()
  burst = start_load(args, job.topics['readings'], PRIMER_S, rate=min(args.rate, PRIMER_RPS))
  try:
    burst.communicate(timeout=60)
  finally:
    if burst.poll() is None:
      burst.kill()
  readings = wait_consumed(job, reader, offsets, PRIMER_TIMEOUT_S)
  return {'readings': readings, 'seconds': round(time.monotonic() - started, 1)}


class Sampler:
  """(t, produced, consumed) samples of a running job, kept only when fresh (see above)."""

  def __init__(self, t0: float, offsets: Offsets, reader, job, consumed: str,
               poll_s: float = 0.5, stale_s: float = 12.0):
    self.t0, self.offsets, self.reader, self.job = t0, offsets, reader, job
    self.consumed = consumed
    self.poll_s, self.stale_s = poll_s, stale_s
    self.samples: List[Sample] = []
    self.counters: Dict[str, int] = {}
    self._last_t = -stale_s

  def run_until(self, end_t: float) -> None:
    """Samples until end_t seconds after t0."""
    while time.time() - self.t0 < end_t:
      if self.job.state() in TERMINAL:
        raise RuntimeError(f'job ended early: {self.job.state()}')
      try:
        new = self.reader.read()
      except OSError as error:  # a REST hiccup costs a sample, not the trial
        log.warning('REST read failed: %s', error)
        new = None
      t = time.time() - self.t0
      if new is not None and (new[self.consumed] != self.counters.get(self.consumed)
                              or t - self._last_t >= self.stale_s):
        sample = Sample(round(t, 2), self.offsets.produced(), new[self.consumed])
        if sample.consumed > sample.produced:  # read first, so never more unless not ours
          raise RuntimeError(f'{self.consumed} counter {sample.consumed} > {sample.produced} '
                             'readings produced: these counters are not this job\'s')
        self.counters = new
        self.samples.append(sample)
        self._last_t = t
      time.sleep(self.poll_s)


def cpu_report(start: Dict[int, float], end: Dict[int, float], consumed_rps: float,
               seconds: float) -> Dict:
  """CPU the job's processes used in the measuring window: cores busy, per process, and
  milliseconds of CPU per reading consumed (comparable across a busy and an idle machine).
  The readings are the window's consumed rate x its length: the counter itself is only
  current every ~10 s, the rate is a fit over the whole window."""
  readings = consumed_rps * seconds
  used = {pid: end[pid] - start.get(pid, 0.0) for pid in end}
  total = sum(used.values())
  return {'cores': round(total / seconds, 2),
          'per_process_cores': {f'{rss.label(pid)}:{pid}': round(u / seconds, 2)
                                for pid, u in used.items()},
          'cpu_ms_per_reading': round(1000 * total / readings, 3) if readings else None}


def measure_latency(args, job, alerts, window_ms: Tuple[int, int],
                    readings_from: Optional[Dict[int, int]],
                    readings_to: Optional[Dict[int, int]]) -> Dict:
  """Latency summary of the alerts of readings produced in window_ms, with what bounds it."""
  from_ms, to_ms = window_ms
  if job.kind == 'java':
    found = csv_alerts(alerts)
    sent = csv_sent_times(args.bootstrap, job.topics['readings'], readings_from, readings_to,
                          {(sensor, value) for sensor, value, _ in found})
    latencies = matched_latencies(found, sent)
  else:
    latencies = alert_latencies(alerts, from_ms, to_ms)
  summary = latency_summary(latencies)
  if job.kind != 'java':
    for part, part_ms in latency_parts(alerts, from_ms, to_ms).items():
      if part_ms:
        summary[part] = latency_summary(part_ms)
  summary['horizon_s'] = args.latency_tail + args.drain
  summary['window_s'] = round((to_ms - from_ms) / 1000, 1)
  return summary


def write_alerts(records, path: str) -> None:
  with open(path, 'w', encoding='utf-8') as out:
    for record in records:
      try:
        alert = json.loads(record.value)
      except ValueError:  # the original job's alerts are CSV
        alert = {'csv': record.value.decode('utf-8', 'replace')}
      alert['kafka_ts'] = record.timestamp
      out.write(json.dumps(alert) + '\n')


def find_pids(mode: str):
  """The processes whose CPU and memory count (bench.rss)."""
  if mode == 'embedded':
    return rss.embedded_pids
  return lambda: rss.cluster_pids(os.path.join(ROOT, '.local/pids'))


def run_trial(args, job_args: Sequence[str]) -> Dict:
  report: Dict = {'mode': args.mode, 'offered_rps': args.rate, 'sensors': args.sensors,
                  'parallelism': args.parallelism, 'warmup_s': args.warmup,
                  'measure_s': args.measure, 'drain_s': args.drain,
                  'spike_every': spike_every(args.rate, args.sensors, args.spike_interval),
                  # the machine is shared: how busy it was says how much to trust a figure
                  'loadavg_before': os.getloadavg()}
  job = make_job(args.job, args.mode, args.bootstrap, args.expansion_service,
                 args.parallelism, args.partitions, job_args, args.flink_master,
                 args.worker_pool)
  with job:
    report.update(describe(job))
    find = find_pids(args.mode)
    with rss.PeakRss(find, use_hwm=args.mode == 'embedded') as peaks:
      started = time.monotonic()
      job.start()
      job.wait_running()
      base, jid = job.locate()
      report['startup_s'] = round(time.monotonic() - started, 1)
      if args.mode == 'cluster':
        try:
          report['other_jobs_on_cluster'] = flink_rest.other_running_jobs(base, jid)
        except OSError as error:
          report['other_jobs_on_cluster'] = str(error)
      offsets = Offsets(args.bootstrap, job.topics['readings'], args.partitions)
      reader = job.reader(base, jid)
      try:
        report['primer'] = prime(args, job, reader, offsets)
      except BaseException:
        offsets.close()
        raise
      load_s = args.warmup + args.measure
      t0 = time.time()
      sampler = Sampler(t0, offsets, reader, job, job.consumed_counter)
      load = start_load(args, job.topics['readings'], load_s)
      latency_ms = (int((t0 + args.warmup) * 1000),
                    int((t0 + load_s - args.latency_tail) * 1000))
      try:
        sampler.run_until(args.warmup)
        cpu_start = rss.cpu_of(find())
        sampler.run_until(load_s)
        cpu_end = rss.cpu_of(find())
        try:
          report['vertices'] = flink_rest.vertex_load(base, jid)
        except OSError as error:  # where the time went is a bonus, not the trial
          report['vertices'] = str(error)
        load_out, _ = load.communicate(timeout=60)
        sampler.run_until(load_s + args.drain)
        readings_from, readings_to = offsets.at(latency_ms[0]), offsets.at(latency_ms[1])
      finally:
        if load.poll() is None:
          load.kill()
        offsets.close()
      report['load'] = json.loads(load_out.strip().splitlines()[-1])
      samples = sampler.samples
      window = [s for s in samples if args.warmup <= s.t <= load_s]
      verdict = lag_verdict(window, args.max_growth, args.max_lag_s, offered_rps=args.rate)
      report['verdict'] = verdict._asdict()
      report['samples'] = [list(s) for s in samples]
      report['counters'] = sampler.counters
      report['cpu'] = cpu_report(cpu_start, cpu_end, verdict.consumed_rps, args.measure)
      alerts = read_topic(args.bootstrap, job.topics['alerts'])
      report['latency'] = measure_latency(args, job, alerts, latency_ms, readings_from,
                                          readings_to)
      if args.alerts_out:
        write_alerts(alerts, args.alerts_out)
    report['rss'] = peaks.report()
    report['rss_trend'] = peaks.trend(since=t0 + args.warmup)
    if args.rss_series:
      report['rss_series'] = {f'{peaks.peaks[pid]["label"]}:{pid}':
                              [[round(t - t0, 1), kb] for t, kb in points]
                              for pid, points in peaks.series.items()}
    report['final_state'] = job.state()
  report['loadavg_after'] = os.getloadavg()
  return report


def parse_args(argv: Optional[Sequence[str]] = None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--job', choices=JOBS, default='anomaly',
                      help='the job under test (default anomaly: ours)')
  parser.add_argument('--mode', choices=('embedded', 'cluster'), default='embedded')
  parser.add_argument('--rate', type=float, required=True, help='offered readings/s')
  parser.add_argument('--sensors', type=int, default=1000)
  parser.add_argument('--parallelism', type=int, default=1)
  parser.add_argument('--partitions', type=int, default=4, help='readings topic (default 4)')
  parser.add_argument('--warmup', type=float, default=80.0, help='seconds (default 80)')
  parser.add_argument('--measure', type=float, default=60.0, help='seconds (default 60)')
  parser.add_argument('--drain', type=float, default=40.0,
                      help='seconds for the last alerts to come out (default 40)')
  parser.add_argument('--latency_tail', type=float, default=0.0,
                      help='seconds at the end of the measuring window whose readings are '
                      'left out of the latency (default 0)')
  parser.add_argument('--spike_interval', type=float, default=150.0,
                      help='seconds between two spikes of one sensor, for alerts; longer '
                      'than the rule\'s 60 s alert hold (default 150)')
  parser.add_argument('--load_engine', choices=('java', 'python'), default='java',
                      help='bench.load --engine (default java: the lighter one)')
  parser.add_argument('--max_growth', type=float, default=0.05)
  parser.add_argument('--max_lag_s', type=float, default=30.0)
  parser.add_argument('--rss_series', action='store_true',
                      help='also report every process\'s RSS every 10 s')
  parser.add_argument('--bootstrap', default='127.0.0.1:9192')
  parser.add_argument('--expansion_service', default='localhost:8197')
  parser.add_argument('--flink_master', default='localhost:8081')
  parser.add_argument('--worker_pool', default='localhost:50000')
  parser.add_argument('--out', help='write the JSON here too')
  parser.add_argument('--alerts_out',
                      help='write every alert here too, one JSON line each with its Kafka '
                      'timestamp as kafka_ts (to see which alerts were slow)')
  args, job_args = parser.parse_known_args(argv)
  if args.job == 'java' and args.mode != 'cluster':
    parser.error('--job java: the original job runs on the cluster only (--mode cluster)')
  return args, [a for a in job_args if a != '--']


def main(argv: Optional[Sequence[str]] = None) -> None:
  logging.basicConfig(level=logging.WARNING)
  args, job_args = parse_args(argv)
  report = run_trial(args, job_args)
  text = json.dumps(report)
  if args.out:
    with open(args.out, 'w', encoding='utf-8') as handle:
      handle.write(text + '\n')
  print(text)


if __name__ == '__main__':
  main()
