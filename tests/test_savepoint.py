"""runners/savepoint.py and the checkpoint defaults of runners/flink_options.py (no Flink)."""

import os

from runners.flink_options import PYTHON_STAGES_BOUND, flink_args
from runners.savepoint import newest, resume_args


def test_newest_skips_a_savepoint_without_metadata(tmp_path):
  # Flink writes _metadata last: a folder without it is a savepoint still being written.
  for name, mtime in (('savepoint-a', 100), ('savepoint-b', 200)):
    folder = tmp_path / name
    folder.mkdir()
    (folder / '_metadata').write_bytes(b'x')
    os.utime(folder / '_metadata', (mtime, mtime))
  (tmp_path / 'savepoint-c').mkdir()  # newer, unfinished
  assert newest(str(tmp_path / 'savepoint-*')) == 'file://' + str(tmp_path / 'savepoint-b')
  assert newest(str(tmp_path / 'nothing-*')) is None


def test_resume_replaces_an_earlier_savepoint_path():
  args = ['--runner=FlinkRunner', '--savepoint_path=file:/old', '--group_id=g']
  assert resume_args('file:/new', args) == [
      '--runner=FlinkRunner', '--group_id=g', '--savepoint_path=file:/new']


def test_checkpoints_on_by_default_on_the_cluster_only(monkeypatch):
  monkeypatch.setattr('runners.flink_options.job_server_jar', lambda: '/jar')
  cluster = flink_args('cluster', 'j')
  assert '--checkpointing_interval=10000' in cluster
  assert '--min_pause_between_checkpoints=5000' in cluster
  # No bundle output kept in a snapshot (see runners/flink_options.py).
  assert '--finish_bundle_before_checkpointing' in cluster
  # No input of a step waits for a barrier on another (alert latency, runners/flink_options.py).
  assert '--unaligned_checkpoint_enabled' in cluster
  assert not any(a.startswith('--checkpointing_interval') for a in flink_args('embedded', 'j'))
  assert '--checkpointing_interval=2000' in flink_args('embedded', 'j', checkpoint_ms=2000)
  assert not any(a.startswith('--checkpointing') for a in flink_args('cluster', 'j', checkpoint_ms=None))
  assert '--savepoint_path=file:/s' in flink_args('cluster', 'j', savepoint_path='file:/s')


def test_streaming_bundles_end_after_200_ms_on_both_flinks(monkeypatch):
  # Each open bundle holds a step's watermark, and alerts wait for it (runners/flink_options.py).
  monkeypatch.setattr('runners.flink_options.job_server_jar', lambda: '/jar')
  for mode in ('embedded', 'cluster'):
    assert '--max_bundle_time_mills=200' in flink_args(mode, 'j')
  assert not any(a.startswith('--max_bundle') for a in flink_args('embedded', 'j', streaming=False))


def test_the_cluster_gets_a_python_worker_per_subtask_or_stage_embedded_keeps_one(monkeypatch):
  # Beam's default, one SDK worker per TaskManager, ran every subtask's Python in one
  # process; one per stage subtask (opt-in) balances better but restarts slower.
  monkeypatch.setattr('runners.flink_options.job_server_jar', lambda: '/jar')
  assert '--sdk_worker_parallelism=3' in flink_args('cluster', 'j', parallelism=3)
  assert f'--sdk_worker_parallelism={3 * PYTHON_STAGES_BOUND}' in flink_args(
      'cluster', 'j', parallelism=3, python_worker_per_stage=True)
  assert not any(a.startswith('--sdk_worker') for a in flink_args('embedded', 'j', parallelism=3))


def test_each_build_numbers_cross_language_transforms_as_a_fresh_process():
  # A savepoint's buffered outputs are restored by the ids inside the expanded KafkaIO
  # transforms, which Beam numbers with a process-wide counter (pipeline/kafka_io.py).
  from apache_beam.transforms.external import ExternalTransform  # pylint: disable=import-outside-toplevel
  from pipeline.kafka_io import number_external_transforms_afresh  # pylint: disable=import-outside-toplevel
  number_external_transforms_afresh()
  first_build = ExternalTransform('beam:test:x', b'')._external_namespace
  ExternalTransform('beam:test:y', b'')  # another pipeline built by the same process
  number_external_transforms_afresh()
  assert ExternalTransform('beam:test:x', b'')._external_namespace == first_build


def test_a_stop_without_drain_cancels_after_the_savepoint_instead_of_finishing(monkeypatch):
  # Flink's /stop finishes the sources, and Beam's source wrapper then sends the final
  # watermark: wrong alerts from the stopping job (runners/flink_rest.py). The real stop and
  # resume is tests/test_fault.py::...[savepoint_and_resume].
  from runners import flink_rest
  calls = []
  states = iter(['CANCELLING', 'CANCELED'])

  def call(path, method='GET', body=None, rest=None):
    calls.append((method, path, body))
    if method == 'POST':
      return {'request-id': 't1'}
    if path.endswith('/savepoints/t1'):
      return {'status': {'id': 'COMPLETED'}, 'operation': {'location': 'file:/sp/1'}}
    return {'state': next(states)}

  monkeypatch.setattr(flink_rest, 'call', call)
  monkeypatch.setattr(flink_rest.time, 'sleep', lambda s: None)
  assert flink_rest.stop_with_savepoint('j', 'file:/sp') == 'file:/sp/1'
  assert calls[0] == ('POST', '/jobs/j/savepoints',
                      {'cancel-job': True, 'target-directory': 'file:/sp'})
  assert calls[-1] == ('GET', '/jobs/j', None)  # returned only once the job had ended
  calls.clear()
  states = iter(['FINISHED'])
  flink_rest.stop_with_savepoint('j', 'file:/sp', drain=True)
  assert calls[0] == ('POST', '/jobs/j/stop', {'drain': True, 'targetDirectory': 'file:/sp'})
