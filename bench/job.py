"""The job under test on fresh topics, for one benchmark trial (tests/e2e_job.py is the model).

Three jobs, each behind the same small interface (start, wait_running, state, locate, reader,
and a context manager that always cancels the job and deletes its topics):

  anomaly      our pipeline as users run it (default rule), python -m pipeline;
  beam_zscore  Beam's AnomalyDetection(ZScore()) with the same source, parser and sink
               (bench/beam_zscore.py);
  java         the original Java Flink job (bench/java_baseline.py), CSV in, submitted
               to the standalone cluster through its REST API (it has no embedded mode here).

All run with the benchmark's windows: 60 s sliding every 10 s. Topics get a unique suffix so
that trials never see each other's records.
"""

import importlib
import time
import uuid
from typing import Dict, List, Optional, Sequence, Tuple

from bench import flink_rest, java_baseline
from runners import flink_rest as runners_flink_rest
from runners import kafka_topics
from runners.flink_options import flink_args

BENCH_WINDOWS = ['--window_size=60', '--window_period=10']
WINDOW_MS, SLIDE_MS = 60_000, 10_000
# Beam's PipelineState names and Flink's own (the Java job is watched through REST).
TERMINAL = ('FAILED', 'CANCELLED', 'CANCELED', 'DONE', 'FINISHED', 'STOPPED')
JOBS = ('anomaly', 'beam_zscore', 'java')
# The module whose run(argv, wait=False) starts each Beam job.
ENTRY_POINTS = {'anomaly': 'pipeline.main', 'beam_zscore': 'bench.beam_zscore'}
# Beam counters read from Flink (anomaly_<name>), and the one that says how far the job has
# read: for ours the parsed readings (judged readings wait for their slot's baseline by
# design, so they trail by a slot even when the job keeps up); for ZScore the readings it
# has scored, the end of its chain.
COUNTERS = {
    'anomaly': ('readings', ['readings', 'alerts', 'judged_readings', 'late_readings',
                             'dead_letters']),
    'beam_zscore': ('zscore_readings', ['readings', 'zscore_readings', 'zscore_anomalies',
                                        'dead_letters']),
}


def checkpoint_interval_ms(argv: Sequence[str]) -> Optional[int]:
  """The checkpoint interval a Beam job runs with: the last --checkpointing_interval of its
  options (the job options of a trial come after the mode's defaults); None: no checkpoints."""
  ms = None
  for arg in argv:
    if arg.startswith('--checkpointing_interval='):
      ms = int(arg.split('=', 1)[1])
  return ms if ms and ms > 0 else None


class FreshTopics:
  """Topics with a unique suffix, created on enter and deleted on exit (also on failure)."""

  def __init__(self, bootstrap: str, job_name: str, readings_partitions: int, keys: Sequence[str]):
    self.bootstrap = bootstrap
    self.suffix = uuid.uuid4().hex[:8]
    self.job_name = f'{job_name}-{self.suffix}'
    self.topics = {k: f'bench-{k}-{self.suffix}' for k in keys}
    self.readings_partitions = readings_partitions
    self._admin = None

  def __enter__(self):
    self._admin = kafka_topics.admin(self.bootstrap)
    kafka_topics.create(self._admin, {
        name: self.readings_partitions if key == 'readings' else 1
        for key, name in self.topics.items()})
    return self

  def cancel(self) -> None:
    """Ends the job if it runs; each job knows how."""
    raise NotImplementedError

  def state(self) -> Optional[str]:
    raise NotImplementedError

  def wait_running(self, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while self.state() != 'RUNNING':
      if self.state() in TERMINAL or time.monotonic() > deadline:
        raise RuntimeError(f'{self.job_name} is {self.state()}, not RUNNING')
      time.sleep(1.0)

  # (REST address, job id) once located on the standalone cluster, which outlives the trial.
  on_cluster: Optional[Tuple[str, str]] = None

  def __exit__(self, *exc) -> None:
    try:
      if self.state() not in TERMINAL:
        self.cancel()
      if self.on_cluster:  # the next trial must not share the cluster with this job
        base, jid = self.on_cluster
        runners_flink_rest.wait_ended(jid, rest=base)
    finally:
      kafka_topics.delete(self._admin, list(self.topics.values()))
      self._admin.close()


class BenchJob(FreshTopics):
  """A Beam job (ours or Beam's ZScore) on embedded Flink or the cluster."""

  def __init__(self, mode: str, bootstrap: str, expansion_service: str, parallelism: int = 1,
               readings_partitions: int = 4, job_args: Sequence[str] = (),
               flink_master: str = 'localhost:8081', worker_pool: str = 'localhost:50000',
               kind: str = 'anomaly'):
    if kind not in ENTRY_POINTS:
      raise ValueError(f'kind must be one of {sorted(ENTRY_POINTS)}, got {kind!r}')
    super().__init__(bootstrap, f'bench-{kind}-{mode}-p{parallelism}', readings_partitions,
                     kafka_topics.TOPIC_KEYS)
    self.mode, self.kind = mode, kind
    self.flink_master = flink_master
    self.consumed_counter, self.counters = COUNTERS[kind]
    self.argv: List[str] = flink_args(
        mode, self.job_name, parallelism=parallelism, flink_master=flink_master,
        worker_pool=worker_pool, python_worker_per_stage=True) + BENCH_WINDOWS + [
            f'--bootstrap_servers={bootstrap}',
            f'--expansion_service={expansion_service}',
            *kafka_topics.job_topic_args(self.topics),
            f'--group_id={self.job_name}',
            *job_args]
    self.checkpoint_ms = checkpoint_interval_ms(self.argv)
    self.result = None

  def start(self) -> None:
    # Imported here: bench.beam_zscore is only needed when it is the job under test.
    run = importlib.import_module(ENTRY_POINTS[self.kind]).run
    self.result = run(self.argv, wait=False)

  def state(self) -> Optional[str]:
    return self.result.state if self.result is not None else None

  def cancel(self) -> None:
    if self.result is not None:
      self.result.cancel()

  def locate(self, timeout_s: float = 180.0) -> Tuple[str, str]:
    """(REST address, job id) of the running job: the cluster's, or the embedded
    MiniCluster's inside the job server JVM that Beam started under this process. It
    appears there once the job server has submitted it, some time after Beam's RUNNING."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
      base = self.flink_master if self.mode == 'cluster' else flink_rest.embedded_rest()
      jid = flink_rest.job_id(base, self.job_name) if base else None
      if jid:
        if self.mode == 'cluster':
          self.on_cluster = (base, jid)
        return base, jid
      time.sleep(1)
    raise RuntimeError(f'no Flink REST API shows {self.job_name}')

  def reader(self, base: str, jid: str) -> flink_rest.CounterReader:
    return flink_rest.CounterReader(base, jid, self.counters)


class OriginalBenchJob(FreshTopics):
  """The original Java job on the standalone cluster: CSV readings in, alerts out."""

  consumed_counter = 'readings'
  checkpoint_ms = None  # the original job never enabled checkpoints
  mode, kind = 'cluster', 'java'

  def __init__(self, bootstrap: str, parallelism: int = 1, readings_partitions: int = 4,
               flink_master: str = 'localhost:8081'):
    super().__init__(bootstrap, f'bench-java-cluster-p{parallelism}', readings_partitions,
                     ('readings', 'alerts'))
    self.flink_master = flink_master
    self.program_args = java_baseline.program_args(
        bootstrap, self.topics['readings'], self.topics['alerts'], window_ms=WINDOW_MS,
        slide_ms=SLIDE_MS, group_id=self.job_name, parallelism=parallelism)
    self.jid: Optional[str] = None

  def start(self) -> None:
    self.jid = java_baseline.submit(self.flink_master, self.program_args)

  def state(self) -> Optional[str]:
    return java_baseline.job_state(self.flink_master, self.jid) if self.jid else None

  def cancel(self) -> None:
    if self.jid:
      java_baseline.cancel(self.flink_master, self.jid)

  def locate(self, timeout_s: float = 60.0) -> Tuple[str, str]:
    del timeout_s  # the job id came back from the submission
    self.on_cluster = (self.flink_master, self.jid)
    return self.on_cluster

  def reader(self, base: str, jid: str) -> flink_rest.SourceRecordsReader:
    return flink_rest.SourceRecordsReader(base, jid)


def make_job(kind: str, mode: str, bootstrap: str, expansion_service: str, parallelism: int,
             readings_partitions: int, job_args: Sequence[str], flink_master: str,
             worker_pool: str) -> FreshTopics:
  """The job of that kind; the Java job only on the cluster, and without Beam options."""
  if kind == 'java':
    if mode != 'cluster':
      raise ValueError('the original Java job runs on the cluster only (--mode cluster)')
    if job_args:
      raise ValueError(f'the original Java job takes no job options, got {list(job_args)}')
    return OriginalBenchJob(bootstrap, parallelism, readings_partitions, flink_master)
  return BenchJob(mode, bootstrap, expansion_service, parallelism, readings_partitions,
                  job_args, flink_master, worker_pool, kind=kind)


def load_format(kind: str) -> str:
  """The readings' format each job reads: the original job only speaks CSV."""
  return 'csv' if kind == 'java' else 'json'


def describe(job: FreshTopics) -> Dict:
  """What a trial report says about the job it ran."""
  return {'job': job.kind, 'job_name': job.job_name, 'checkpoint_ms': job.checkpoint_ms}
