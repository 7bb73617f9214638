"""Our job on fresh topics, for one benchmark trial (tests/e2e_job.py is the model).

The job is the streaming pipeline as users run it (default rule), with the benchmark's
windows: 60 s sliding every 10 s. Topics get a unique suffix so that trials never see each
other's records; they are deleted when the trial ends, also on failure.
"""

import time
import uuid
from typing import List, Optional, Sequence

from pipeline.main import run
from runners import kafka_topics
from runners.flink_options import flink_args

BENCH_WINDOWS = ['--window_size=60', '--window_period=10']
TERMINAL = ('FAILED', 'CANCELLED', 'DONE', 'STOPPED')


class BenchJob:
  """Topics and the running job; use as a context manager so it is always cancelled."""

  def __init__(self, mode: str, bootstrap: str, expansion_service: str, parallelism: int = 1,
               readings_partitions: int = 4, job_args: Sequence[str] = (),
               flink_master: str = 'localhost:8081', worker_pool: str = 'localhost:50000'):
    self.mode = mode
    self.bootstrap = bootstrap
    suffix = uuid.uuid4().hex[:8]
    self.job_name = f'bench-{mode}-p{parallelism}-{suffix}'
    self.topics = {k: f'bench-{k}-{suffix}' for k in kafka_topics.TOPIC_KEYS}
    self.argv: List[str] = flink_args(
        mode, self.job_name, parallelism=parallelism, flink_master=flink_master,
        worker_pool=worker_pool) + BENCH_WINDOWS + [
            f'--bootstrap_servers={bootstrap}',
            f'--expansion_service={expansion_service}',
            *kafka_topics.job_topic_args(self.topics),
            f'--group_id={self.job_name}',
            *job_args]
    self.readings_partitions = readings_partitions
    self.result = None
    self._admin = None

  def __enter__(self) -> 'BenchJob':
    self._admin = kafka_topics.admin(self.bootstrap)
    kafka_topics.create(self._admin, {
        name: self.readings_partitions if key == 'readings' else 1
        for key, name in self.topics.items()})
    return self

  def start(self) -> None:
    self.result = run(self.argv, wait=False)

  def wait_running(self, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while self.state() != 'RUNNING':
      if self.state() in TERMINAL or time.monotonic() > deadline:
        raise RuntimeError(f'{self.job_name} is {self.state()}, not RUNNING')
      time.sleep(1.0)

  def state(self) -> Optional[str]:
    return self.result.state if self.result is not None else None

  def __exit__(self, *exc) -> None:
    try:
      if self.result is not None and self.state() not in TERMINAL:
        self.result.cancel()
    finally:
      kafka_topics.delete(self._admin, list(self.topics.values()))
      self._admin.close()
