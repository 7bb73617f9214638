"""The Flink JVMs' heap after garbage collection, over a long trial, from the REST API.

Why not RSS alone: a JVM's resident memory grows while its heap expands into the memory it
was given (young generation pages touched for the first time) and rarely shrinks, so a
slowly rising RSS over ten minutes says little about a leak. What a leak does show is the
heap's floor: the used heap right after a collection, which stays put when every object
of the job is released again. The floor of each minute is the smallest used-heap sample
in it (sampled every few seconds, a collection falls in every minute at these rates), and
the trend is the least-squares slope of those floors.

The JobManager's metrics and each TaskManager's come from the same REST address (the
standalone cluster's or the embedded MiniCluster's).
"""

import threading
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from bench.analysis import slope

HEAP_USED = 'Status.JVM.Memory.Heap.Used'
MB = 1 << 20


def _metric(rows: Sequence[Dict], name: str) -> Optional[float]:
  """The value of `name` in a REST metrics answer ([{'id', 'value'}])."""
  for row in rows:
    if row.get('id') == name:
      return float(row['value'])
  return None


def heap_used(get: Callable[[str], object]) -> Dict[str, float]:
  """{'jobmanager' or 'taskmanager <id>': used heap in bytes} of every JVM of the cluster;
  get(path) answers a REST path. JVMs whose metric is missing are left out."""
  out: Dict[str, float] = {}
  used = _metric(get(f'/jobmanager/metrics?get={HEAP_USED}'), HEAP_USED)
  if used is not None:
    out['jobmanager'] = used
  for tm in get('/taskmanagers').get('taskmanagers', []):
    used = _metric(get(f"/taskmanagers/{tm['id']}/metrics?get={HEAP_USED}"), HEAP_USED)
    if used is not None:
      out[f"taskmanager {tm['id']}"] = used
  return out


def floors(points: Sequence[Tuple[float, float]], bucket_s: float = 60.0
           ) -> List[Tuple[float, float]]:
  """[(bucket start, smallest value in it)] of (time, value) points, in time order."""
  low: Dict[int, float] = {}
  for t, value in points:
    key = int(t // bucket_s)
    low[key] = min(value, low.get(key, value))
  return [(key * bucket_s, low[key]) for key in sorted(low)]


def floor_trend(points: Sequence[Tuple[float, float]], since: float,
                bucket_s: float = 60.0) -> Optional[Dict]:
  """{'mb_per_min', 'floors_mb'} of the heap floors from `since` on (whole buckets only:
  the first and last may hold no collection); None with fewer than 3 whole buckets."""
  buckets = floors([(t - since, v) for t, v in points if t >= since], bucket_s)[:-1]
  if len(buckets) < 3:
    return None
  return {'mb_per_min': round(slope([(t / 60, v / MB) for t, v in buckets]), 2),
          'floors_mb': [round(v / MB, 1) for _, v in buckets]}


class HeapSampler:
  """Samples every JVM's used heap every `interval_s` in a thread, from start() to stop()."""

  def __init__(self, get: Callable[[str], object], interval_s: float = 5.0,
               clock: Callable[[], float] = time.time):
    self._get = get
    self._interval = interval_s
    self._clock = clock
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._loop, daemon=True, name='heap')
    self.series: Dict[str, List[Tuple[float, float]]] = {}  # JVM -> [(time, bytes)]
    self.errors = 0

  def sample(self) -> None:
    now = self._clock()
    try:
      used = heap_used(self._get)
    except (OSError, ValueError):  # a missed sample is a gap, not a failed trial
      self.errors += 1
      return
    for jvm, value in used.items():
      self.series.setdefault(jvm, []).append((now, value))

  def _loop(self) -> None:
    while not self._stop.wait(self._interval):
      self.sample()

  def start(self) -> None:
    self._thread.start()

  def stop(self) -> None:
    self._stop.set()
    self._thread.join()

  def trend(self, since: float) -> List[Dict]:
    """[{'jvm', 'mb_per_min', 'floors_mb'}] of each JVM with enough samples after `since`,
    the steepest first."""
    rows = []
    for jvm, points in self.series.items():
      found = floor_trend(points, since)
      if found:
        rows.append(dict(jvm=jvm, **found))
    return sorted(rows, key=lambda r: -abs(r['mb_per_min']))
