"""The Beam options that put the job on Flink here, for the demo, the tests and users.

  embedded  Beam's Flink job server jar (from .cache/jars, started by Beam for the job)
            runs the job in a Flink MiniCluster ([local]); Python workers are LOOPBACK,
            inside the submitting process.
  cluster   the same job server submits to the standalone cluster's REST address
            (runners/flink_cluster.sh); Python workers come from the EXTERNAL worker pool
            beside the TaskManager. The job ships no jars: that cluster carries the job
            server's classpath in its lib folder (runners/cluster_lib.py), and Beam's
            default, uploading the whole classpath (~200 MB) with every job, took 18-25 s
            of each submission. For another cluster, flink_args(..., jars_on_cluster=False).

Checkpointing: on by default in cluster mode, every CLUSTER_CHECKPOINT_MS (the cluster's
config, runners/flink_cluster.sh, keeps state in the TaskManager heap, writes checkpoints to
.local/flink/checkpoints and restarts a failed job from its last one); off by default in
embedded mode (a demo or test run is thrown away). KafkaIO commits the group's offsets when
a checkpoint completes, so without checkpoints no offset is committed. Beam 2.70's portable
Flink runner declined every checkpoint of a stage with a side input; runners/java/
flink-runner-fixes corrects that. `savepoint_path` starts the job from a savepoint or a
retained checkpoint (runners/savepoint.py).

With checkpoints, every step finishes its bundle before its snapshot
(finish_bundle_before_checkpointing). Beam's default instead keeps what a bundle finished
during the snapshot emits in the snapshot and sends it with the step's next bundle; a job
started from such a savepoint sent those elements to the wrong output (dead letters into
the late gate: "ClassCastException: [B cannot be cast to Long", restarting without end;
3 of 4 savepoint resumes of tests/test_fault.py here), and the watermark could overtake
them (a slot's baselines arrived after the slot had been judged without them).
Checkpoints are unaligned (a barrier overtakes the data queued before it, which goes into
the checkpoint): with aligned ones a step with two inputs, such as the judging step (readings
and the baselines side input), stops reading one input until the barrier has come through
the other, and the baselines' input is busy right after each slot start (every sensor's
window statistics fire then), so the readings stood for up to ~4 s at every checkpoint that
met a slot start. Measured on the cluster at 5,000 readings/s with --baseline_lag=10: alerts
p50 1.6 s / p99 4.1 s aligned, 1.1 s / 2.3 s unaligned, at the same CPU per reading.
Savepoints stay aligned (Flink's rule), so a resume from one is unaffected.

Python workers on the cluster: one SDK worker process per subtask (sdk_worker_parallelism =
parallelism) by default, or with python_worker_per_stage one per subtask of each Python
stage (PYTHON_STAGES_BOUND x parallelism). Beam's Flink runner pins each stage subtask, as
it opens, to worker (k mod sdk_worker_parallelism), k counting the subtasks opened on that
TaskManager, and starts a worker only when a subtask is pinned to it. Beam's default, one
worker per TaskManager, ran every Python step in one process on one core: parallelism 1,
20,000 readings/s offered, 18,694/s read, lag growing (cluster, 1,000 sensors, AMD EPYC
host, 2026-12-03). One worker per subtask leaves the split of the eight Python stages
between the workers to the order in which the subtasks opened, a race: in two of fourteen
starts that day one worker got over 80 % of the Python work (0.65-0.70 cores against
0.11-0.14) and the job read 16,000-18,700/s of 20,000 offered, where balanced starts
sustained 20,000/s. A worker per stage subtask (16 at parallelism 2) lets the OS spread
them over the cores: 28,280/s sustained (`make bench`), at the same CPU per reading; the
price is memory (16 workers, 2.75 GB at their peaks together, against 2 x 290 MB) and
restarts, when every worker starts at once: in `make test-fault` with the Parquet archive
(22 workers) the tasks ran again 41 s after a TaskManager was killed instead of ~7 s, and
the recoveries took 29-53 s instead of 9-36 s. So the default stays one per subtask, and
`make bench` runs the Beam jobs with one per stage subtask.
LOOPBACK workers (embedded) live in the submitting process and share its interpreter lock,
so embedded mode keeps one.

Bundles last at most BUNDLE_TIME_MS (Beam's Flink runner: 1,000 ms, or 1,000 elements).
Each step holds its output watermark while a bundle is open, and an alert waits for the
watermark to pass several steps (the statistics' groupings, the side input, the scorer's
timer): measured on embedded Flink at 4,000 readings/s, 1,000 ms gave alerts p50 7.8 s / p99
11.7 s, 200 ms 2.2 s / 4.3 s, for 0.12 -> 0.18 ms of CPU per reading; at 20,000 readings/s
bundles fill by size first and the CPU per reading was the same (0.057 ms).
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
