"""The Beam options that put the job on Flink here, for the demo, the tests and users.

  embedded  Beam's Flink job server jar (from .cache/jars, started by Beam for the job)
            runs the job in a Flink MiniCluster ([local]); Python workers are LOOPBACK,
            inside the submitting process.
  cluster   the same job server submits to the standalone cluster's REST address
            (runners/flink_cluster.sh); Python workers come from the EXTERNAL worker pool
            beside the TaskManager.

Checkpointing is off unless `checkpoint_ms` is given. Beam 2.70's portable Flink runner
declined every checkpoint of a stage with a side input (ClassCastException while copying the
side-input state); runners/java/flink-runner-fixes corrects that, and checkpoints now
complete, but restoring from one is not tested yet, so it is not the default. Without
checkpoints KafkaIO commits no offsets (it commits on checkpoint finalization).
"""

import glob
import os
from typing import List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLINK_VERSION = '1.19'
MODES = ('embedded', 'cluster')


def job_server_jar() -> str:
  pattern = os.path.join(
      ROOT, '.cache/jars/flink-job-server',
      f'beam-runners-flink-{FLINK_VERSION}-job-server-*.jar')
  jars = sorted(glob.glob(pattern))
  if not jars:
    raise FileNotFoundError(f'no job server jar at {pattern}: run runners/fetch_jars.sh')
  return jars[-1]


def flink_args(mode: str, job_name: str, parallelism: int = 2, streaming: bool = True,
               checkpoint_ms: Optional[int] = None, flink_master: str = 'localhost:8081',
               worker_pool: str = 'localhost:50000',
               job_endpoint: Optional[str] = None) -> List[str]:
  """Beam pipeline options for `mode` ('embedded' or 'cluster')."""
  if mode not in MODES:
    raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
  args = [
      '--runner=FlinkRunner', f'--flink_version={FLINK_VERSION}',
      f'--parallelism={parallelism}', f'--job_name={job_name}',
  ]
  if job_endpoint:
    args.append(f'--job_endpoint={job_endpoint}')
  else:
    args.append(f'--flink_job_server_jar={job_server_jar()}')
  if mode == 'embedded':
    args += ['--flink_master=[local]', '--environment_type=LOOPBACK']
  else:
    args += [f'--flink_master={flink_master}', '--environment_type=EXTERNAL',
             f'--environment_config={worker_pool}']
  if streaming:
    args.append('--streaming')
    if checkpoint_ms:
      args.append(f'--checkpointing_interval={checkpoint_ms}')
  return args
