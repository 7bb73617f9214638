"""Peak resident memory of the job's processes, from /proc/<pid>/status.

VmHWM is the kernel's own peak RSS of a process (kept while it lives), VmRSS the current
one. A sampler thread reads both every second, because a process that ends (a Python
worker, the embedded job server when the job is cancelled) takes its VmHWM with it, and
because new processes (workers started by the worker pool) appear during a run. The peak
reported is the larger of the last VmHWM seen and the largest VmRSS sampled.

Which processes: on embedded Flink, the job server JVM that Beam starts as a child of the
submitting Python process, and that Python process itself (it hosts the LOOPBACK workers);
on the cluster, the JobManager, every TaskManager and the worker pool (pids from
.local/pids) and every descendant of theirs (the SDK workers the pool forks).

Every `series_every_s` the current RSS of each process is also kept as a time series, so
that a long run can tell memory that settles from memory that keeps growing (trend()).
"""

import os
import threading
import time
from typing import Callable, Dict, Iterable, List, Optional, Tuple

from bench.analysis import slope

PROC = '/proc'


def parse_status(text: str) -> Dict[str, int]:
  """VmHWM and VmRSS (kB) of a /proc/<pid>/status text; absent fields are left out
  (a zombie or kernel thread has none)."""
  out = {}
  for line in text.splitlines():
    key, _, rest = line.partition(':')
    if key in ('VmHWM', 'VmRSS'):
      value, _, unit = rest.strip().partition(' ')
      if unit.strip() != 'kB':
        raise ValueError(f'unexpected unit in {line!r}')
      out[key] = int(value)
  return out


def read_status(pid: int) -> Optional[Dict[str, int]]:
  try:
    with open(f'{PROC}/{pid}/status', encoding='utf-8') as handle:
      return parse_status(handle.read())
  except (FileNotFoundError, ProcessLookupError):
    return None


def parent_of(stat_text: str) -> int:
  """The ppid field of a /proc/<pid>/stat text (the command may contain spaces and ')')."""
  return int(stat_text.rsplit(')', 1)[1].split()[1])


def cpu_seconds(stat_text: str, ticks_per_s: int) -> float:
  """utime + stime of a /proc/<pid>/stat text, in seconds (fields 14 and 15)."""
  fields = stat_text.rsplit(')', 1)[1].split()
  return (int(fields[11]) + int(fields[12])) / ticks_per_s


def cpu_of(pids: Iterable[int]) -> Dict[int, float]:
  """{pid: CPU seconds used so far} of the live ones among pids. CPU time, unlike a rate,
  means the same on a busy shared machine: what a reading costs, not how long it waited."""
  ticks = os.sysconf('SC_CLK_TCK')
  out = {}
  for pid in pids:
    try:
      with open(f'{PROC}/{pid}/stat', encoding='utf-8') as handle:
        out[pid] = cpu_seconds(handle.read(), ticks)
    except OSError:
      continue
  return out


def descendants(root: int) -> List[int]:
  """Every live descendant of root (not root itself)."""
  children: Dict[int, List[int]] = {}
  for entry in os.listdir(PROC):
    if entry.isdigit():
      try:
        with open(f'{PROC}/{entry}/stat', encoding='utf-8') as handle:
          children.setdefault(parent_of(handle.read()), []).append(int(entry))
      except (OSError, IndexError, ValueError):
        continue
  found, todo = [], [root]
  while todo:
    for child in children.get(todo.pop(), ()):
      found.append(child)
      todo.append(child)
  return found


def cmdline(pid: int) -> str:
  try:
    with open(f'{PROC}/{pid}/cmdline', 'rb') as handle:
      return handle.read().replace(b'\0', b' ').decode('utf-8', 'replace').strip()
  except OSError:
    return ''


def label(pid: int) -> str:
  """A short name for a process: job-server, jobmanager, taskmanager, worker-pool, ..."""
  cmd = cmdline(pid)
  # Flink's main classes first: the cluster's classpath names the job server's jar too
  # (runners/cluster_lib.py).
  for needle, name in (('StandaloneSessionClusterEntrypoint', 'jobmanager'),
                       ('TaskManagerRunner', 'taskmanager'), ('job-server', 'job-server'),
                       ('worker_pool', 'worker-pool'), ('sdk_worker', 'sdk-worker'),
                       ('java', 'java'), ('python', 'python')):
    if needle in cmd:
      return name
  return cmd.split(' ', 1)[0] or 'process'


def reset_peak(pid: int) -> bool:
  """Resets the kernel's VmHWM of pid (writing 5 to clear_refs), so that a peak from an
  earlier run in the same process does not count; False when not allowed."""
  try:
    with open(f'{PROC}/{pid}/clear_refs', 'w', encoding='ascii') as handle:
      handle.write('5')
    return True
  except OSError:
    return False


class PeakRss:
  """Samples the peak RSS of the processes `find()` returns, every `interval_s`.

  use_hwm=False ignores VmHWM: for long-lived processes (the cluster's) whose peak may
  come from an earlier job, only the RSS sampled during this run counts."""

  def __init__(self, find: Callable[[], Iterable[int]], interval_s: float = 1.0,
               use_hwm: bool = True, series_every_s: float = 10.0,
               clock: Callable[[], float] = time.time):
    self._find = find
    self._use_hwm = use_hwm
    self._interval = interval_s
    self._series_every = series_every_s
    self._clock = clock
    self._series_at = -float('inf')
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._loop, daemon=True, name='peak-rss')
    self.peaks: Dict[int, Dict] = {}  # pid -> {'label', 'peak_kb'}
    self.series: Dict[int, List[Tuple[float, int]]] = {}  # pid -> [(time, VmRSS kB)]

  def sample(self) -> None:
    now = self._clock()
    keep_point = now - self._series_at >= self._series_every
    if keep_point:
      self._series_at = now
    for pid in self._find():
      status = read_status(pid)
      if not status:
        continue
      entry = self.peaks.setdefault(pid, {'label': label(pid), 'peak_kb': 0})
      hwm = status.get('VmHWM', 0) if self._use_hwm else 0
      entry['peak_kb'] = max(entry['peak_kb'], hwm, status.get('VmRSS', 0))
      if keep_point and 'VmRSS' in status:
        self.series.setdefault(pid, []).append((now, status['VmRSS']))

  def _loop(self) -> None:
    while not self._stop.wait(self._interval):
      self.sample()

  def __enter__(self) -> 'PeakRss':
    self.sample()
    self._thread.start()
    return self

  def __exit__(self, *exc) -> None:
    self._stop.set()
    self._thread.join()
    self.sample()

  def report(self) -> List[Dict]:
    """[{'pid', 'label', 'peak_mb'}], largest first."""
    rows = [{'pid': pid, 'label': e['label'], 'peak_mb': round(e['peak_kb'] / 1024, 1)}
            for pid, e in self.peaks.items()]
    return sorted(rows, key=lambda r: -r['peak_mb'])

  def trend(self, since: float) -> List[Dict]:
    """[{'pid', 'label', 'mb_per_min', 'points'}] of each process with at least 3 RSS points
    from `since` (a time of the clock) on: the least-squares slope of its RSS."""
    rows = []
    for pid, points in self.series.items():
      after = [((t - since) / 60, kb / 1024) for t, kb in points if t >= since]
      if len(after) >= 3:
        rows.append({'pid': pid, 'label': self.peaks[pid]['label'],
                     'mb_per_min': round(slope(after), 2), 'points': len(after)})
    return sorted(rows, key=lambda r: -abs(r['mb_per_min']))


def cluster_pids(pid_dir: str) -> List[int]:
  """The cluster's processes and their descendants, from runners/flink_cluster.sh's pid files
  (flink-taskmanager.pid, flink-taskmanager-2.pid, ...: every TaskManager it started)."""
  try:
    taskmanagers = sorted(n[:-4] for n in os.listdir(pid_dir)
                          if n.startswith('flink-taskmanager') and n.endswith('.pid'))
  except OSError:
    taskmanagers = []
  roots = []
  for name in ('flink-jobmanager', *taskmanagers, 'worker-pool'):
    try:
      with open(os.path.join(pid_dir, f'{name}.pid'), encoding='ascii') as handle:
        roots.append(int(handle.read().strip()))
    except (OSError, ValueError):
      continue
  pids = []
  for root in roots:
    if os.path.exists(f'{PROC}/{root}'):
      pids.append(root)
      pids.extend(descendants(root))
  return pids


def embedded_pids() -> List[int]:
  """This process (LOOPBACK workers) and the job server JVM Beam started under it (not
  the load generator, which is a descendant too)."""
  me = os.getpid()
  return [me] + [pid for pid in descendants(me) if 'job-server' in cmdline(pid)]
