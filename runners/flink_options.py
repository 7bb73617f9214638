"""The Beam options that put the job on Flink here, for the demo, the tests and users.

  embedded  Beam's Flink job server jar (from .cache/jars, started by Beam for the job)
            runs the job in a Flink MiniCluster ([local]); Python workers are LOOPBACK,
            inside the submitting process, one of them (they share its interpreter lock).
  cluster   the same job server submits to the standalone cluster's REST address
            (runners/flink_cluster.sh); Python workers come from the EXTERNAL worker pool
            beside the TaskManagers. The job ships no jars: that cluster carries the job
            server's classpath in its lib folder (runners/cluster_lib.py). For another
            cluster, flink_args(..., jars_on_cluster=False).

Checkpoints are on by default in cluster mode, every CLUSTER_CHECKPOINT_MS, and off in
embedded mode (a demo or test run is thrown away); KafkaIO commits the group's offsets only
when a checkpoint completes. With checkpoints every step finishes its bundle before its
snapshot (else a savepoint could resume elements to the wrong output), and checkpoints are
unaligned (else the judging step's readings stand still while a barrier crosses the
baselines input). `savepoint_path` starts the job from a savepoint or a retained checkpoint
(runners/savepoint.py).

Python workers on the cluster: one per subtask by default; python_worker_per_stage gives
one per subtask of each Python stage, faster at the limit but heavier and slower to
restart. Bundles last at most BUNDLE_TIME_MS instead of Beam's 1,000 ms: an open bundle
holds back the watermark that alerts wait for.

The measurements behind each choice: docs/design.md ("The Flink runner").
"""

import glob
import os
from typing import List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLINK_VERSION = '1.19'
MODES = ('embedded', 'cluster')
CLUSTER_CHECKPOINT_MS = 10_000
BUNDLE_TIME_MS = 200  # see the module docstring
# At least the job's Python stages (eight with the defaults, eleven with the archive): with
# sdk_worker_parallelism >= stage subtasks per TaskManager each gets a worker of its own.
PYTHON_STAGES_BOUND = 16
# Stages no jars with a job (runners/java/flink-job-server): the cluster has them.
NO_JARS_TO_STAGE = ('--pipeline_resources_detector_factory_class='
                    'local.anomaly.flink.ClasspathOnCluster')


def job_server_jar() -> str:
  pattern = os.path.join(
      ROOT, '.cache/jars/flink-job-server',
      f'beam-runners-flink-{FLINK_VERSION}-job-server-*.jar')
  jars = sorted(glob.glob(pattern))
  if not jars:
    raise FileNotFoundError(f'no job server jar at {pattern}: run runners/fetch_jars.sh')
  return jars[-1]


def flink_args(mode: str, job_name: str, parallelism: int = 2, streaming: bool = True,
               checkpoint_ms: Optional[int] = -1, flink_master: str = 'localhost:8081',
               worker_pool: str = 'localhost:50000',
               job_endpoint: Optional[str] = None,
               savepoint_path: Optional[str] = None,
               jars_on_cluster: bool = True,
               python_worker_per_stage: bool = False) -> List[str]:
  """Beam pipeline options for `mode` ('embedded' or 'cluster').

  checkpoint_ms: -1 for the mode's default (cluster: CLUSTER_CHECKPOINT_MS, embedded: off),
  None or 0 for no checkpoints. jars_on_cluster: the cluster at flink_master carries the
  job's Java runtime (runners/flink_cluster.sh does), so the job ships no jars.
  python_worker_per_stage: on the cluster, a Python worker per stage subtask instead of per
  subtask (faster at the limit, slower to restart: see the module docstring).
  """
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
    # One SDK worker per subtask, or per subtask of each Python stage (module docstring).
    workers = PYTHON_STAGES_BOUND * parallelism if python_worker_per_stage else parallelism
    args += [f'--flink_master={flink_master}', '--environment_type=EXTERNAL',
             f'--environment_config={worker_pool}', f'--sdk_worker_parallelism={workers}']
    if jars_on_cluster:
      args.append(NO_JARS_TO_STAGE)
  if checkpoint_ms == -1:
    checkpoint_ms = CLUSTER_CHECKPOINT_MS if mode == 'cluster' else None
  if streaming:
    args += ['--streaming', f'--max_bundle_time_mills={BUNDLE_TIME_MS}']
    if checkpoint_ms:
      # A pause as long as a checkpoint takes at most keeps a slow checkpoint from
      # starving the job.
      args += [f'--checkpointing_interval={checkpoint_ms}',
               f'--min_pause_between_checkpoints={checkpoint_ms // 2}',
               # No bundle output kept in a snapshot (see the module docstring).
               '--finish_bundle_before_checkpointing',
               # No input waits for a barrier on another (see the module docstring).
               '--unaligned_checkpoint_enabled']
  if savepoint_path:
    args.append(f'--savepoint_path={savepoint_path}')
  return args
