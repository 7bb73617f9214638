"""Submission to an existing Flink cluster by its REST address alone: --flink_submit_uber_jar
uploads a self-contained job server jar with the pipeline (runners/uber_jar.py) to the
local standalone cluster, where the job must come up RUNNING; then it is cancelled.

Beam 2.70's uber-jar job cannot cancel (it posts to /v1/<job>/stop, which Flink 1.19 does
not serve: 404), so the test cancels through Flink's REST API, as an operator would.
"""

import time
import urllib.request

import pytest

from runners.services import Services
from runners.topic_reader import wait_for
from runners.uber_jar import uber_jar
from tests.e2e_job import FLINK_REST, JobRun, flink_job

pytestmark = pytest.mark.e2e


@pytest.fixture(scope='module')
def cluster():
  started = Services()
  try:
    for script in ('kafka.sh', 'expansion_service.sh', 'flink_cluster.sh'):
      started.ensure(script)
    yield
  finally:
    started.stop_started()


def cancel_in_flink(job_name: str) -> None:
  """Cancels the job of that name through Flink REST unless it already ended."""
  job = flink_job(job_name)
  if job and job['state'] not in ('CANCELED', 'FAILED', 'FINISHED'):
    request = urllib.request.Request(
        f"http://{FLINK_REST}/jobs/{job['jid']}?mode=cancel", method='PATCH')
    with urllib.request.urlopen(request, timeout=10):
      pass


def test_uber_jar_submission_runs_on_the_cluster(cluster):
  jar = uber_jar()
  job = JobRun('cluster', readings_partitions=1)
  try:
    # Later options win: the uber jar replaces flink_args' thin job server jar.
    job.start(['--flink_submit_uber_jar', f'--flink_job_server_jar={jar}',
               f'--flink_master={FLINK_REST}'])
    state, deadline = None, time.monotonic() + 180
    while state != 'RUNNING' and time.monotonic() < deadline:
      job.raise_if_failed()
      state = (flink_job(job.job_name) or {}).get('state')
      time.sleep(1)
    assert state == 'RUNNING', f'Flink REST shows job {job.job_name} as {state}'
    cancel_in_flink(job.job_name)
    # Beam's job sees the end through REST too, and then deletes the uploaded jar.
    wait_for(lambda: job.result.state == 'CANCELLED', 60, f'{job.job_name} cancelled')
  finally:
    cancel_in_flink(job.job_name)
    job.close()  # waits until Flink shows the job stopped, deletes the topics
