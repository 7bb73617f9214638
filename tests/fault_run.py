"""One fault-injection run on the standalone Flink cluster, for tests/test_fault.py.

The job reads a steady stream (a producer thread paces records to their event time, which
is wall-clock time), a fault hits at a chosen moment, and afterwards the run checks what
users are promised (docs/operations.md, "Guarantees"): the job recovers by itself, and after dropping
duplicates (alerts by `alert_id`, dead letters by their source partition and offset) its
outputs are exactly what a fault-free run gives.

The ground truth is the readings topic itself, read back at the end: what the producer
really wrote, so a send the broker lost or repeated during its restart cannot make the
expectation wrong (the producer is idempotent, and the run also checks it wrote exactly
what it was given).
"""

import os
import signal
import subprocess
import threading
import time
from collections import Counter
from typing import Callable, Dict, List, Optional, Tuple

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from runners import flink_rest
from runners.simulator import Record, produce
from runners.topic_reader import read_topic, wait_for
from tests.e2e_job import BOOTSTRAP, JobRun, readings_of
from tests.oracle import expected_alert_ids
from transforms.parse import RecordParser
from transforms.records import DeadLetter, RawRecord

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PIDS = os.path.join(ROOT, '.local/pids')


def recorded_pid(name: str) -> int:
  with open(os.path.join(PIDS, f'{name}.pid'), encoding='ascii') as f:
    return int(f.read().strip())


def script(name: str, command: str) -> None:
  """Run a project script; a failure says what the script printed (CI shows only this)."""
  done = subprocess.run([os.path.join(ROOT, 'runners', name), command], cwd=ROOT,
                        capture_output=True, text=True)
  if done.returncode != 0:
    raise RuntimeError(f'runners/{name} {command} exited {done.returncode}:\n'
                       f'{done.stdout[-3000:]}{done.stderr[-6000:]}')


def _wait_dead(pid: int, timeout_s: float = 30.0) -> None:
  def dead():
    try:
      os.kill(pid, 0)
      return False
    except ProcessLookupError:
      return True
  wait_for(dead, timeout_s, f'pid {pid} to exit')


# --- The faults: each ends with the service back up (what an operator or a supervisor
# such as systemd or Kubernetes would do), so the job can recover. ---

def kill_taskmanager(run: 'FaultRun') -> None:
  """kill -9 the TaskManager JVM running the job (Flink, the Java SDK harness and the Kafka
  clients die with it), then start a new TaskManager. The job restarts by itself in the
  cluster's other TaskManager, the standby; the new one, started once the job runs again,
  becomes the next standby. (Started at once, its JVM took CPU from the restarting job on
  this one machine: deployment 5 s -> 13 s; on a real cluster it starts elsewhere.)"""
  jid = flink_rest.running_job(run.job.job_name, rest=run.rest)['jid']
  hosts = sorted(flink_rest.job_taskmanagers(jid, run.rest))
  assert hosts, f'no TaskManager runs a task of {run.job.job_name}'
  pid = recorded_pid(hosts[0])
  os.kill(pid, signal.SIGKILL)
  _wait_dead(pid)
  wait_for(lambda: not run.tasks_running(), 60, f'Flink to notice the loss of {hosts[0]}',
           interval_s=0.2)
  run.phases['job down'] = time.time() - run.fault_at
  wait_for(run.tasks_running, 120, f'{run.job.job_name} RUNNING again on the standby')
  run.phases['tasks running'] = time.time() - run.fault_at
  script('flink_cluster.sh', 'start')


def kill_worker_pool(run: 'FaultRun') -> None:
  """kill -9 the Python worker pool and the SDK workers it started (its process group:
  runners/lib.sh starts every service in a session of its own), then start the pool again."""
  pid = recorded_pid('worker-pool')
  os.killpg(pid, signal.SIGKILL)
  _wait_dead(pid)
  script('flink_cluster.sh', 'start')


def restart_broker(run: 'FaultRun') -> None:
  """Stop the Kafka broker and start it again (its data stays)."""
  script('kafka.sh', 'stop')
  script('kafka.sh', 'start')


def savepoint_and_resume(run: 'FaultRun') -> None:
  """Stop the job with a savepoint (no drain) and start it again from that savepoint."""
  job = flink_rest.running_job(run.job.job_name, rest=run.rest)
  location = flink_rest.stop_with_savepoint(job['jid'], rest=run.rest)
  run.old_job_gone_at = time.time()  # windows ending before now may be the old job's
  run.stopped_job_start = job['start-time']
  run.savepoint = location
  run.job.start(run.job_args + [f'--savepoint_path={location}'])


FAULTS: Dict[str, Callable[['FaultRun'], None]] = {
    'kill_taskmanager': kill_taskmanager,
    'kill_worker_pool': kill_worker_pool,
    'restart_broker': restart_broker,
    'savepoint_and_resume': savepoint_and_resume,
}


class SteadyProducer(threading.Thread):
  """Produces records paced to their event time, in the background."""

  def __init__(self, topic: str, records: List[Record]):
    super().__init__(daemon=True)
    self.topic = topic
    self.records = records
    self.produced = 0
    self.error: Optional[BaseException] = None

  def run(self) -> None:
    # Idempotent: retries after a broker restart neither duplicate nor reorder records.
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=20, acks='all',
                             enable_idempotence=True, delivery_timeout_ms=300_000,
                             request_timeout_ms=20_000, max_block_ms=120_000)
    try:
      self.produced = produce(producer, self.topic, self.records, pace=True)
    except BaseException as error:  # pylint: disable=broad-except
      self.error = error
    finally:
      producer.close()


class WindowStatsTail(threading.Thread):
  """Follows the window-stats topic and notes when each window end was first seen: the
  job's heartbeat, from which the recovery time is read."""

  def __init__(self, topic: str):
    super().__init__(daemon=True)
    self.topic = topic
    self.first_seen: Dict[str, float] = {}  # window_end (ISO) -> wall time first seen
    self.sightings: List[Tuple[str, float]] = []  # (window_end, wall time) of every record
    self._stopping = threading.Event()

  def run(self) -> None:
    import json  # pylint: disable=import-outside-toplevel
    position = 0
    while not self._stopping.is_set():
      # A fresh consumer per round: kafka-python's consumer did not always recover from a
      # broker restart by itself, and this thread must keep following through one.
      try:
        consumer = KafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False,
                                 request_timeout_ms=5000)
        try:
          partition = TopicPartition(self.topic, 0)
          consumer.assign([partition])
          consumer.seek(partition, position)
          for _ in range(10):
            batches = consumer.poll(timeout_ms=500)
            now = time.time()
            for batch in batches.values():
              for record in batch:
                end = json.loads(record.value)['window_end']
                self.first_seen.setdefault(end, now)
                self.sightings.append((end, now))
                position = record.offset + 1
            if self._stopping.is_set():
              break
        finally:
          consumer.close()
      except Exception:  # pylint: disable=broad-except
        time.sleep(1)

  def stop(self) -> None:
    self._stopping.set()
    self.join(10)

  def usual_delay_s(self, before_wall_s: float) -> Optional[float]:
    """Median of (first seen - window end) over the windows ending before that moment: how
    late window statistics come out without a fault, the floor under any recovery time."""
    from datetime import datetime  # pylint: disable=import-outside-toplevel
    delays = sorted(seen - datetime.fromisoformat(end.replace('Z', '+00:00')).timestamp()
                    for end, seen in self.first_seen.items()
                    if datetime.fromisoformat(end.replace('Z', '+00:00')).timestamp()
                    < before_wall_s)
    return delays[len(delays) // 2] if delays else None

  def first_output_after(self, fault_wall_s: float) -> Optional[float]:
    """When a window ending after that moment was first seen after it (wall time). Seen
    after, too: a job stopped with a savepoint emitted windows ending after its stop
    (1.3 s "recovery" in one CI run), so only a sighting once it was gone proves the new
    job."""
    from transforms.records import iso_ms  # pylint: disable=import-outside-toplevel
    after = iso_ms(int(fault_wall_s * 1000))
    times = [seen for end, seen in self.sightings if end > after and seen > fault_wall_s]
    return min(times) if times else None


class FaultRun:
  """Topics, the steady input, the job on the cluster, the fault and the verdict."""

  def __init__(self, make_records: Callable[[int], List[Record]],
               job_args: List[str] = (), rest: str = flink_rest.DEFAULT_REST):
    """make_records(start_ms) gives the input, its event time starting at start_ms;
    job_args: more options for the job."""
    self.make_records = make_records
    self.job_args = list(job_args)
    self.rest = rest
    self.job = JobRun('cluster', readings_partitions=4)
    self.savepoint: Optional[str] = None
    self.stopped_job_start = 0
    self.old_job_gone_at: Optional[float] = None
    # What happened when, in seconds after the fault: the fault function returned (for a
    # savepoint: the new job submitted), Flink first showed the job not fully running,
    # every task of the job RUNNING again.
    self.phases: Dict[str, float] = {}
    self.fault_at: Optional[float] = None
    self.recovery_s: Optional[float] = None

  def start(self) -> None:
    self.job.start(self.job_args)
    wait_for(lambda: flink_rest.all_tasks_running(
        (flink_rest.job_by_name(self.job.job_name, self.rest) or {'jid': None})['jid'],
        self.rest) if flink_rest.job_by_name(self.job.job_name, self.rest) else False,
        120, f'{self.job.job_name} RUNNING on the cluster')
    start_ms = int(time.time() * 1000) + 2000
    self.records = self.make_records(start_ms - start_ms % 5000 + 5000)
    self.producer = SteadyProducer(self.job.topics['readings'], self.records)
    self.tail = WindowStatsTail(self.job.topics['stats'])
    self.tail.start()
    self.producer.start()

  def inject(self, fault: str, at_wall_s: float) -> None:
    """Waits until wall time at_wall_s, injects the fault, then waits for recovery: the job
    RUNNING with all its tasks, and a window ending after the fault in its output."""
    time.sleep(max(0.0, at_wall_s - time.time()))
    self.fault_at = time.time()
    FAULTS[fault](self)
    self.phases['fault handled'] = time.time() - self.fault_at
    # Output that proves recovery: a window ending after the fault, or for a stop, after
    # the stopped job was gone (it kept emitting while its savepoint was taken).
    proof_after = self.old_job_gone_at or self.fault_at

    def recovered():
      self.raise_if_job_ended()
      if 'tasks running' not in self.phases:
        if not self.tasks_running():
          self.phases.setdefault('job down', time.time() - self.fault_at)
        elif 'job down' in self.phases:
          self.phases['tasks running'] = time.time() - self.fault_at
      return self.tail.first_output_after(proof_after) is not None
    try:
      wait_for(recovered, 300, f'window statistics for a window ending after the {fault}')
    except TimeoutError as error:
      raise TimeoutError(f'{error}; {self.job_report()}') from error
    self.recovery_s = self.tail.first_output_after(proof_after) - self.fault_at
    usual = self.tail.usual_delay_s(self.fault_at - 10)
    if usual is not None:
      self.phases['usual window delay'] = usual

  def tasks_running(self) -> bool:
    job = flink_rest.job_by_name(self.job.job_name, self.rest)
    return (job is not None and job['state'] == 'RUNNING'
            and flink_rest.all_tasks_running(job['jid'], self.rest))

  def raise_if_job_ended(self) -> None:
    """AssertionError, with Flink's reason, once the newest job of this run has ended: a
    failed restore or submission shows here at once instead of as a timeout."""
    job = flink_rest.job_by_name(self.job.job_name, self.rest)
    if job is not None and job['state'] in flink_rest.ENDED and not self.resuming(job):
      raise AssertionError(f'{self.job.job_name} ended: {self.job_report()}')

  def resuming(self, job: dict) -> bool:
    """Whether job is the one stopped with the savepoint while its successor starts."""
    return self.savepoint is not None and job['start-time'] <= self.stopped_job_start

  def job_report(self) -> str:
    """The state and the last failure cause of the newest Flink job of this run."""
    job = flink_rest.job_by_name(self.job.job_name, self.rest)
    if job is None:
      return 'no Flink job of that name'
    cause = flink_rest.root_exception(job['jid'], self.rest)
    return f'Flink job {job["jid"]} {job["state"]}; last failure: {cause or "none"}'

  def finish(self, timeout_s: float = 600) -> None:
    """Waits until the producer is done and the job has emitted everything expected."""
    self.producer.join(timeout_s)
    if self.producer.error:
      raise self.producer.error
    assert self.producer.produced == len(self.records)
    self.truth = read_topic(BOOTSTRAP, self.job.topics['readings'])
    parser = RecordParser()
    parsed = [parser.parse(RawRecord(r.value, r.timestamp, r.key, r.topic, r.partition,
                                     r.offset)) for r in self.truth]
    self.malformed = [p for p in parsed if isinstance(p, DeadLetter)]
    self.readings = readings_of([Record(b'', r.value, r.timestamp, 'normal')
                                 for r in self.truth])
    self.expected = expected_alert_ids(self.readings, 10_000, 5_000, 50.0)
    last_ts = max(r.ts_ms for r in self.readings)
    from transforms.records import iso_ms  # pylint: disable=import-outside-toplevel
    last_window_end = iso_ms(last_ts - last_ts % 5000 + 10_000)
    sensors = len({r.sensor_id for r in self.readings})

    def complete():
      stats = self.job.read('stats')
      return (sum(1 for s in stats if s['window_end'] == last_window_end) >= sensors
              and self.expected <= {a['alert_id'] for a in self.job.read('alerts')}
              and len(self.dead_letter_keys()) >= len(self.malformed))
    wait_for(complete, timeout_s, f'{self.job.job_name}: every expected output')
    time.sleep(5)  # anything unexpected gets a chance to show up

  def dead_letter_keys(self) -> Counter:
    """(partition, offset, reason) of each dead letter: where its record sits in the
    readings topic, which identifies it across replays."""
    return Counter((d['source']['partition'], d['source']['offset'], d['reason'])
                   for d in self.job.read('dead'))

  def close(self) -> None:
    try:
      if getattr(self, 'tail', None):
        self.tail.stop()
      job = flink_rest.job_by_name(self.job.job_name, self.rest)
      if job and job['state'] not in flink_rest.ENDED:
        flink_rest.cancel(job['jid'], self.rest)
    finally:
      self.job.result = None  # cancelled above, through REST
      self.job.close()
