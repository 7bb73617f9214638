"""The few Flink REST calls the project needs: find a job, its state, cancel it, savepoints.

Flink's REST API (default http://localhost:8081) is the one interface that works for both
a job submitted through Beam's job server and one submitted as an uber jar, so the tests,
the savepoint command and the benchmark all go through it. Standard library only.
"""

import json
import time
import urllib.request
from typing import Optional

DEFAULT_REST = 'localhost:8081'
ENDED = ('FAILED', 'CANCELED', 'FINISHED')


class FlinkRestError(RuntimeError):
  """Flink answered, but not with what was asked for."""


def call(path: str, method: str = 'GET', body: Optional[dict] = None,
         rest: str = DEFAULT_REST, timeout_s: float = 10.0):
  """JSON of `method` `path`; body, when given, is sent as JSON."""
  data = json.dumps(body).encode() if body is not None else None
  request = urllib.request.Request(
      f'http://{rest}{path}', data=data, method=method,
      headers={'Content-Type': 'application/json'} if data else {})
  with urllib.request.urlopen(request, timeout=timeout_s) as response:
    raw = response.read()
  return json.loads(raw) if raw else None


def job_by_name(job_name: str, rest: str = DEFAULT_REST) -> Optional[dict]:
  """The newest job of that name ({'jid', 'name', 'state', 'start-time', ...}), or None."""
  jobs = [j for j in call('/jobs/overview', rest=rest)['jobs'] if j['name'] == job_name]
  return max(jobs, key=lambda j: j['start-time']) if jobs else None


def running_job(job_name: str, rest: str = DEFAULT_REST) -> dict:
  """The job of that name that has not ended; FlinkRestError when there is none."""
  job = job_by_name(job_name, rest)
  if job is None or job['state'] in ENDED:
    raise FlinkRestError(f'no running Flink job named {job_name!r} at {rest}'
                         + (f' (newest is {job["state"]})' if job else ''))
  return job


def all_tasks_running(jid: str, rest: str = DEFAULT_REST) -> bool:
  """Whether the job is RUNNING with every task of every vertex RUNNING (after a restart the
  job shows RUNNING while its tasks are still being deployed)."""
  detail = call(f'/jobs/{jid}', rest=rest)
  if detail['state'] != 'RUNNING':
    return False
  return all(v['status'] == 'RUNNING' for v in detail['vertices'])


def job_taskmanagers(jid: str, rest: str = DEFAULT_REST) -> set:
  """Resource ids of the TaskManagers running some task of the job (runners/flink_cluster.sh
  names its TaskManagers' resource ids after their pid files)."""
  ids = set()
  for vertex in call(f'/jobs/{jid}', rest=rest)['vertices']:
    hosts = call(f'/jobs/{jid}/vertices/{vertex["id"]}/taskmanagers', rest=rest)
    ids.update(t['taskmanager-id'] for t in hosts['taskmanagers'] if t['status'] == 'RUNNING')
  return ids


def root_exception(jid: str, rest: str = DEFAULT_REST) -> Optional[str]:
  """The first lines of the job's most recent failure cause, or None when it has none."""
  history = call(f'/jobs/{jid}/exceptions?maxExceptions=1', rest=rest)
  text = (history or {}).get('root-exception')
  return '\n'.join(text.splitlines()[:12]) if text else None


def cancel(jid: str, rest: str = DEFAULT_REST) -> None:
  call(f'/jobs/{jid}?mode=cancel', method='PATCH', rest=rest)


def wait_ended(jid: str, rest: str = DEFAULT_REST, timeout_s: float = 120.0) -> str:
  """Waits until the job has ended and returns its final state. A cancelled Beam job stays
  CANCELLING for up to ~30 s here (its Kafka source closes slowly), its tasks still on the
  TaskManager's cores."""
  deadline = time.monotonic() + timeout_s
  while True:
    state = call(f'/jobs/{jid}', rest=rest)['state']
    if state in ENDED:
      return state
    if time.monotonic() > deadline:
      raise FlinkRestError(f'job {jid} still {state} {timeout_s:.0f} s after its cancel')
    time.sleep(1.0)


def stop_with_savepoint(jid: str, target_dir: Optional[str] = None, drain: bool = False,
                        rest: str = DEFAULT_REST, timeout_s: float = 300.0) -> str:
  """Stops the job with a savepoint and returns the savepoint's location once the job has
  ended.

  drain=False (an upgrade): the savepoint holds every open window, and a job started from
  it continues as if nothing happened. Flink's own stop (POST /stop) is not used for this:
  it ends the sources gracefully, and Beam 2.70's legacy source wrapper, which KafkaIO runs
  in on Flink (UnboundedSourceWrapper.run), emits the final watermark (Long.MAX_VALUE)
  whenever its read loop ends, so the stopping job fired every event-time timer and judged
  readings against windows cut short: extra, wrong alerts (25 and 28 of ~640 in two of
  five fault runs here). Instead the savepoint is taken with cancel-job, so the tasks are
  cancelled, not finished, right after it: what they emit meanwhile is at most a duplicate
  of what the resumed job emits again (README "Guarantees").
  drain=True (a final stop): Flink's stop with drain, the watermark jumps to the end of time
  first, so every window fires before the job ends.
  """
  body: dict = {'drain': True} if drain else {'cancel-job': True}
  if target_dir:
    body['targetDirectory' if drain else 'target-directory'] = target_dir
  path = f'/jobs/{jid}/stop' if drain else f'/jobs/{jid}/savepoints'
  deadline = time.monotonic() + timeout_s
  location = _await_operation(f'/jobs/{jid}/savepoints',
                              call(path, method='POST', body=body, rest=rest)['request-id'],
                              'location', f'savepoint of job {jid}', rest, timeout_s)
  wait_ended(jid, rest, max(1.0, deadline - time.monotonic()))
  return location


def trigger_checkpoint(jid: str, rest: str = DEFAULT_REST, timeout_s: float = 120.0) -> int:
  """Takes a checkpoint now (Flink 1.19's manual trigger, of the job's configured type) and
  returns its id once it has completed; a report of it is then in /jobs/<jid>/checkpoints."""
  trigger = call(f'/jobs/{jid}/checkpoints', method='POST', body={}, rest=rest)['request-id']
  return _await_operation(f'/jobs/{jid}/checkpoints', trigger, 'checkpointId',
                          f'checkpoint of job {jid}', rest, timeout_s)


def _await_operation(path: str, trigger: str, result_key: str, what: str, rest: str,
                     timeout_s: float):
  """Polls Flink's asynchronous operation `path`/`trigger` (a savepoint or checkpoint) until
  it completes; returns its `result_key`, or raises with Flink's failure cause."""
  deadline = time.monotonic() + timeout_s
  while time.monotonic() < deadline:
    status = call(f'{path}/{trigger}', rest=rest)
    if status['status']['id'] == 'COMPLETED':
      operation = status.get('operation') or {}
      if result_key not in operation:
        raise FlinkRestError(f'{what} failed: {operation.get("failure-cause", operation)}')
      return operation[result_key]
    time.sleep(0.2)
  raise FlinkRestError(f'{what} not done after {timeout_s:.0f} s')
