"""One benchmark trial: our job at one offered rate, measured; one JSON document out.

  python -m bench.trial --mode embedded --rate 2000 --sensors 1000 [--parallelism 1] \
      [--bootstrap 127.0.0.1:9192] [--expansion_service localhost:8197] [--out t.json] \
      [-- extra job options]

Timeline (seconds from the load's start): 0..warmup the job fills its first 60 s window and
starts judging (not measured); warmup..warmup+measure the lag is judged (bounded or not,
bench.analysis.lag_verdict); then the load stops and the job gets `drain` seconds to
emit the alerts of the last readings.

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
from typing import Dict, List, Optional, Sequence

from kafka import KafkaConsumer, TopicPartition

from bench import flink_rest, rss
from bench.analysis import Sample, lag_verdict, latency_summary
from bench.job import BenchJob
from runners.topic_reader import read_topic

log = logging.getLogger('bench.trial')
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COUNTERS = ['readings', 'alerts', 'judged_readings', 'late_readings', 'dead_letters']


class Offsets:
  """Sum of the end offsets of a topic's partitions, with one long-lived consumer."""

  def __init__(self, bootstrap: str, topic: str, partitions: int):
    self._consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    self._partitions = [TopicPartition(topic, p) for p in range(partitions)]

  def produced(self) -> int:
    return sum(self._consumer.end_offsets(self._partitions).values())

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


def spike_every(rate: float, sensors: int, interval_s: float) -> int:
  """Every how many readings of a sensor a spike comes, for one per sensor per interval_s:
  a sensor gets rate / sensors readings/s."""
  return max(2, round(interval_s * rate / sensors))


def start_load(args, topic: str, duration_s: float) -> subprocess.Popen:
  cmd = [sys.executable, '-m', 'bench.load', '--bootstrap', args.bootstrap, '--topic', topic,
         '--partitions', str(args.partitions), '--sensors', str(args.sensors),
         '--rate', str(args.rate), '--duration', str(duration_s),
         '--spike_every', str(spike_every(args.rate, args.sensors, args.spike_interval)),
         '--engine', args.load_engine]
  return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)


def rest_of(job: BenchJob, args) -> str:
  deadline = time.monotonic() + 60
  while time.monotonic() < deadline:
    base = args.flink_master if args.mode == 'cluster' else flink_rest.embedded_rest()
    if base and flink_rest.job_id(base, job.job_name):
      return base
    time.sleep(1)
  raise RuntimeError(f'no Flink REST API shows {job.job_name}')


class Sampler:
  """(t, produced, consumed) samples of a running job, kept only when fresh (see above)."""

  def __init__(self, t0: float, offsets: Offsets, reader: flink_rest.CounterReader,
               job: BenchJob, poll_s: float = 0.5, stale_s: float = 12.0):
    self.t0, self.offsets, self.reader, self.job = t0, offsets, reader, job
    self.poll_s, self.stale_s = poll_s, stale_s
    self.samples: List[Sample] = []
    self.counters: Dict[str, int] = {}
    self._last_t = -stale_s

  def run_until(self, end_t: float) -> None:
    """Samples until end_t seconds after t0."""
    while time.time() - self.t0 < end_t:
      if self.job.state() in ('FAILED', 'CANCELLED', 'DONE'):
        raise RuntimeError(f'job ended early: {self.job.state()}')
      try:
        new = self.reader.read()
      except OSError as error:  # a REST hiccup costs a sample, not the trial
        log.warning('REST read failed: %s', error)
        new = None
      t = time.time() - self.t0
      if new is not None and (new['readings'] != self.counters.get('readings')
                              or t - self._last_t >= self.stale_s):
        self.counters = new
        self.samples.append(Sample(round(t, 2), self.offsets.produced(), new['readings']))
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


def run_trial(args, job_args: Sequence[str]) -> Dict:
  report: Dict = {'mode': args.mode, 'offered_rps': args.rate, 'sensors': args.sensors,
                  'parallelism': args.parallelism, 'warmup_s': args.warmup,
                  'measure_s': args.measure,
                  # the machine is shared: how busy it was says how much to trust a figure
                  'loadavg_before': os.getloadavg()}
  with BenchJob(args.mode, args.bootstrap, args.expansion_service, args.parallelism,
                args.partitions, job_args, flink_master=args.flink_master,
                worker_pool=args.worker_pool) as job:
    report['job_name'] = job.job_name
    find = (rss.embedded_pids if args.mode == 'embedded'
            else lambda: rss.cluster_pids(os.path.join(ROOT, '.local/pids')))
    with rss.PeakRss(find, use_hwm=args.mode == 'embedded') as peaks:
      started = time.monotonic()
      job.start()
      job.wait_running()
      base = rest_of(job, args)
      report['startup_s'] = round(time.monotonic() - started, 1)
      reader = flink_rest.CounterReader(base, flink_rest.job_id(base, job.job_name), COUNTERS)
      offsets = Offsets(args.bootstrap, job.topics['readings'], args.partitions)
      load_s = args.warmup + args.measure
      t0 = time.time()
      sampler = Sampler(t0, offsets, reader, job)
      load = start_load(args, job.topics['readings'], load_s)
      try:
        sampler.run_until(args.warmup)
        cpu_start = rss.cpu_of(find())
        sampler.run_until(load_s)
        cpu_end = rss.cpu_of(find())
        try:
          report['vertices'] = flink_rest.vertex_load(base, reader.jid)
        except OSError as error:  # where the time went is a bonus, not the trial
          report['vertices'] = str(error)
        load_out, _ = load.communicate(timeout=60)
        sampler.run_until(load_s + args.drain)
      finally:
        if load.poll() is None:
          load.kill()
        offsets.close()
      report['load'] = json.loads(load_out.strip().splitlines()[-1])
      samples = sampler.samples
      window = [s for s in samples if args.warmup <= s.t <= load_s]
      verdict = lag_verdict(window, args.max_growth, args.max_lag_s)
      report['verdict'] = verdict._asdict()
      report['samples'] = [list(s) for s in samples]
      report['counters'] = sampler.counters
      report['cpu'] = cpu_report(cpu_start, cpu_end, verdict.consumed_rps, args.measure)
      from_ms = int((t0 + args.warmup) * 1000)
      alerts = read_topic(args.bootstrap, job.topics['alerts'])
      report['latency'] = latency_summary(
          alert_latencies(alerts, from_ms, from_ms + int(args.measure * 1000)))
    report['rss'] = peaks.report()
    report['final_state'] = job.state()
  report['loadavg_after'] = os.getloadavg()
  return report


def parse_args(argv: Optional[Sequence[str]] = None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--mode', choices=('embedded', 'cluster'), default='embedded')
  parser.add_argument('--rate', type=float, required=True, help='offered readings/s')
  parser.add_argument('--sensors', type=int, default=1000)
  parser.add_argument('--parallelism', type=int, default=1)
  parser.add_argument('--partitions', type=int, default=4, help='readings topic (default 4)')
  parser.add_argument('--warmup', type=float, default=80.0, help='seconds (default 80)')
  parser.add_argument('--measure', type=float, default=60.0, help='seconds (default 60)')
  parser.add_argument('--drain', type=float, default=40.0,
                      help='seconds for the last alerts to come out (default 40)')
  parser.add_argument('--spike_interval', type=float, default=150.0,
                      help='seconds between two spikes of one sensor, for alerts; longer '
                      'than the rule\'s 60 s alert hold (default 150)')
  parser.add_argument('--load_engine', choices=('java', 'python'), default='java',
                      help='bench.load --engine (default java: the lighter one)')
  parser.add_argument('--max_growth', type=float, default=0.05)
  parser.add_argument('--max_lag_s', type=float, default=30.0)
  parser.add_argument('--bootstrap', default='127.0.0.1:9192')
  parser.add_argument('--expansion_service', default='localhost:8197')
  parser.add_argument('--flink_master', default='localhost:8081')
  parser.add_argument('--worker_pool', default='localhost:50000')
  parser.add_argument('--out', help='write the JSON here too')
  args, job_args = parser.parse_known_args(argv)
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
