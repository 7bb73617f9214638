"""How far the job has read: its counters in the Flink REST API, on either runner.

Why the REST API and not consumer-group offsets: KafkaIO commits offsets only when a
checkpoint is finalized, so group lag needs checkpointing, which the job does not run by
default, whose side-input state grows with the job's age, and whose barriers queue behind
the very backlog being measured (the committed offset trails by a checkpoint interval plus
its duration). Flink's metrics need none of that and are current to within a bundle
(Beam counters are reported when a bundle finishes, at most ~1 s on this runner).

The counter used is the job's own `anomaly_readings` (every reading parsed in the Python
worker), summed over operators and subtasks: it counts what the slow part of the job has
processed, not just what the Kafka source pulled into Flink's buffers. The embedded
MiniCluster also serves this API, on a random port of the job server JVM, found here by
probing that process's listening sockets.

The original Java job has no Beam counters: its source vertex (Kafka source and CSV parser,
chained) counts the records it sent on to the window operator (Flink's `write-records`),
which back-pressure holds to what the windows have taken in.
"""

import http.client
import json
import os
import urllib.parse
import urllib.request
from typing import Dict, List, Optional

from bench.rss import cmdline, descendants

COUNTER_PREFIX = 'anomaly_'


def get(base: str, path: str, timeout_s: float = 5.0):
  with urllib.request.urlopen(f'http://{base}{path}', timeout=timeout_s) as response:
    return json.load(response)


def listening_ports(pid: int) -> List[int]:
  """TCP ports pid listens on (its socket inodes matched against /proc/net/tcp{,6})."""
  inodes = set()
  try:
    for fd in os.listdir(f'/proc/{pid}/fd'):
      try:
        target = os.readlink(f'/proc/{pid}/fd/{fd}')
      except OSError:
        continue
      if target.startswith('socket:['):
        inodes.add(target[8:-1])
  except OSError:
    return []
  ports = set()
  for table in ('tcp', 'tcp6'):
    try:
      with open(f'/proc/{pid}/net/{table}', encoding='ascii') as handle:
        next(handle)
        for line in handle:
          fields = line.split()
          if fields[3] == '0A' and fields[9] in inodes:  # 0A = LISTEN
            ports.add(int(fields[1].rsplit(':', 1)[1], 16))
    except OSError:
      continue
  return sorted(ports)


def embedded_rest(parent: Optional[int] = None) -> Optional[str]:
  """host:port of the Flink REST API in the job server JVM under parent (default: us)."""
  for pid in descendants(parent or os.getpid()):
    if 'job-server' not in cmdline(pid):
      continue
    for port in listening_ports(pid):
      base = f'127.0.0.1:{port}'
      try:
        if 'flink-version' in get(base, '/config', timeout_s=1.0):
          return base
      except (OSError, ValueError, http.client.HTTPException):
        continue
  return None


def job_id(base: str, job_name: str) -> Optional[str]:
  """The newest RUNNING job of that name, else the newest of that name, else None (also
  on embedded Flink the job is named after the Beam job name). Never another job: Beam
  says RUNNING before its job server has uploaded the jars and submitted the job (up to
  ~30 s on the cluster), and taking the cluster's only job then meant reading the previous
  trial's counters."""
  jobs = get(base, '/jobs/overview')['jobs']
  named = [j for j in jobs if j['name'] == job_name]
  running = [j for j in named if j['state'] == 'RUNNING']
  pick = running or named
  return max(pick, key=lambda j: j['start-time'])['jid'] if pick else None


def counter_name(metric_id: str) -> Optional[str]:
  """'0.[4]{ParseReadings...}.anomaly_readings' -> 'readings'; None for other metrics."""
  name = metric_id.rsplit('.', 1)[-1]
  return name[len(COUNTER_PREFIX):] if name.startswith(COUNTER_PREFIX) else None


class CounterReader:
  """Reads a few counters repeatedly, remembering which metric ids hold them (listing all
  of a job's ~200 metrics per vertex on every sample would cost more than the sample);
  it looks again every `rediscover` reads, for subtasks whose counters appeared later."""

  def __init__(self, base: str, jid: str, names: List[str], rediscover: int = 10):
    self.base, self.jid, self.names = base, jid, names
    self._ids: Dict[str, List[str]] = {}
    self._reads = 0
    self._rediscover = rediscover

  def _discover(self) -> None:
    self._ids = {}
    for vertex in get(self.base, f'/jobs/{self.jid}')['vertices']:
      path = f"/jobs/{self.jid}/vertices/{vertex['id']}/metrics"
      ids = [m['id'] for m in get(self.base, path) if counter_name(m['id']) in self.names]
      if ids:
        self._ids[path] = ids

  def read(self) -> Dict[str, int]:
    if not self._ids or self._reads % self._rediscover == 0:
      self._discover()
    self._reads += 1
    totals = {name: 0 for name in self.names}
    for path, ids in self._ids.items():
      query = ','.join(urllib.parse.quote(i, safe='') for i in ids)
      for metric in get(self.base, f'{path}?get={query}'):
        totals[counter_name(metric['id'])] += int(float(metric['value']))
    return totals


class SourceRecordsReader:
  """{'readings': records the job's source vertices sent downstream}, for a job without Beam
  counters; refreshed by Flink's metric fetcher like the counters above."""

  def __init__(self, base: str, jid: str):
    self.base, self.jid = base, jid

  def read(self) -> Dict[str, int]:
    return {'readings': source_records_out(get(self.base, f'/jobs/{self.jid}'))}


def source_records_out(job_detail: Dict) -> int:
  """Sum of `write-records` of the source vertices ('Source: ...') in a /jobs/<jid> answer."""
  return sum(int(vertex.get('metrics', {}).get('write-records', 0))
             for vertex in job_detail['vertices'] if vertex['name'].startswith('Source'))


def other_running_jobs(base: str, jid: str) -> int:
  """How many other jobs run on that Flink: they share its cores and skew a trial."""
  return sum(1 for j in get(base, '/jobs/overview')['jobs']
             if j['state'] == 'RUNNING' and j['jid'] != jid)


def vertex_load(base: str, jid: str) -> List[Dict]:
  """Where the job's time goes: per vertex (operator chain), the busiest subtask's
  busy and back-pressured milliseconds per second (Flink's own task metrics). The vertex
  that is busy ~1000 ms/s while those before it are back-pressured is the bottleneck."""
  rows = []
  for vertex in get(base, f'/jobs/{jid}')['vertices']:
    path = (f"/jobs/{jid}/vertices/{vertex['id']}/subtasks/metrics"
            '?get=busyTimeMsPerSecond,backPressuredTimeMsPerSecond&agg=max')
    values = {m['id']: m.get('max') for m in get(base, path)}
    rows.append({'vertex': vertex['name'][:90],
                 'busy_ms_per_s': values.get('busyTimeMsPerSecond'),
                 'backpressured_ms_per_s': values.get('backPressuredTimeMsPerSecond')})
  return rows
