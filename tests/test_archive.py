"""The Parquet archive (pipeline/archive.py) and its tool (pipeline/archive_tool.py).

The pipeline tests run build_pipeline on the DirectRunner with the absolute
rule (threshold 50), window_size 10 s, window_period 5 s and one archive file
window per 10 s of event time. Times are seconds after T0 = 2023-11-14T22:13:20Z.
"""

import csv
import json
import os
import re
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.transforms.window import IntervalWindow

from pipeline import archive_tool
from pipeline.archive import (
    ARCHIVED_OUTPUTS, SCHEMAS, TIMESTAMP, _WriteParquetFileFn, alert_row, archive_outputs,
    dead_letter_row, file_name, partition_dirs, validate_archive)
from pipeline.archive_read import as_text, drop_duplicates, read_output
from pipeline.main import run
from pipeline.options import InvalidOptionError
from tests.streaming import T0, csv_record, json_record, run_stream
from transforms.judge import alert_id
from transforms.records import DeadLetter, RawRecord, Reading, iso_ms

# no baseline lag: the expected alerts below are computed with slots aligned with the windows
RULE_ARGS = ['--rule=absolute', '--threshold=50', '--window_size=10', '--window_period=5',
             '--baseline_lag=0']
FOLDER = os.path.join('dt=2023-11-14', 'hour=22')  # T0 and the next minutes, in UTC
FILE_NAME = re.compile(r'^part-\d{8}T\d{6}Z-s\d{3}-[0-9a-f]{12}\.parquet$')

ARCHIVE_EVENTS = [
    ('add', [json_record('s1', 10.0, 1, unit='C'), json_record('s1', 12.0, 2),
             json_record('s1', 14.0, 6), json_record('s1', 100.0, 7, unit='C'),
             json_record('s2', 10.0, 1), json_record('s2', 80.0, 6),
             csv_record('oops', 'not-a-number', 3)]),
    ('watermark', 30),
    # 22 s behind the watermark, within the allowed 30 s: judged, and archived
    # in a late pane of the file window [0, 10) that has already been written.
    ('add', [json_record('s1', 1000.0, 8)]),
]
# Alerts (slot [5, 10), trailing window [-5, 5): s1 {10, 12} mean 11, s2 {10}):
# s1 at 7 s |100 - 11| = 89; s2 at 6 s |80 - 10| = 70; s1 at 8 s |1000 - 11| = 989.
LATE_ALERT_ID = alert_id(Reading('s1', 1000.0, T0 + 8000))


def archive_files(root):
  """{output: [path relative to the output folder]} of every file under root."""
  found = {}
  for folder, _, names in os.walk(root):
    for name in names:
      relative = os.path.relpath(os.path.join(folder, name), root)
      output, rest = relative.split(os.sep, 1)
      found.setdefault(output, []).append(rest)
  return found


def json_columns(alert, columns):
  """An alert as the JSON output has it, in the archive's columns (extras as JSON objects)."""
  expected = {c: alert.get(c) for c in columns if c not in ('reading', 'extra')}
  expected['reading'] = alert.get('reading')
  expected['extra'] = {k: v for k, v in alert.items() if k not in columns} or None
  return expected


def archived_alerts(archive_dir):
  rows = as_text(read_output(archive_dir, 'alerts')).to_pylist()
  for row in rows:
    row['reading'] = row['reading'] and json.loads(row['reading'])
    row['extra'] = row['extra'] and json.loads(row['extra'])
  return rows


@pytest.fixture(scope='module')
def streamed(tmp_path_factory):
  """One streaming run with the archive: (outputs as JSON dicts, archive folder)."""
  archive_dir = str(tmp_path_factory.mktemp('archive'))
  args = RULE_ARGS + [f'--archive_dir={archive_dir}', '--archive_period=10']
  outputs, _ = run_stream(ARCHIVE_EVENTS, args, attach=archive_outputs)
  return outputs, archive_dir


def test_archived_alerts_equal_the_alert_output(streamed):
  outputs, archive_dir = streamed
  assert {a['alert_id'] for a in outputs['alerts']} == {
      alert_id(Reading('s1', 100.0, T0 + 7000)), alert_id(Reading('s2', 80.0, T0 + 6000)),
      LATE_ALERT_ID}
  columns = SCHEMAS['alerts'].names
  expected = sorted((json_columns(a, columns) for a in outputs['alerts']), key=lambda a: a['ts'])
  assert archived_alerts(archive_dir) == expected


def test_archived_statistics_and_dead_letters_equal_the_outputs(streamed):
  outputs, archive_dir = streamed
  fields = ('sensor_id', 'window_start', 'window_end', 'count', 'mean', 'pane')
  stats = as_text(read_output(archive_dir, 'window_stats')).to_pylist()
  assert sorted(tuple(s[f] for f in fields) for s in stats) == sorted(
      tuple(s[f] for f in fields) for s in outputs['window_stats'])
  assert {s['pane'] for s in stats} == {'ON_TIME', 'LATE'}  # the reading at 8 s updated two windows
  [dead] = read_output(archive_dir, 'dead_letters').to_pylist()
  assert (dead['reason'], dead['payload']) == ('non_numeric_value', b'oops,not-a-number')
  [dead] = as_text(read_output(archive_dir, 'dead_letters')).to_pylist()
  assert dead['ts'] == dead['source_timestamp'] == iso_ms(T0 + 3000)  # the record's own time


def test_every_file_has_the_declared_schema(streamed):
  _, archive_dir = streamed
  files = archive_files(archive_dir)
  assert sorted(files) == ['alerts', 'dead_letters', 'window_stats']
  for output, paths in files.items():
    for path in paths:
      schema = pq.read_schema(os.path.join(archive_dir, output, path))
      assert schema.equals(SCHEMAS[output], check_metadata=True), path
  assert SCHEMAS['alerts'].field('ts').type == pa.timestamp('ms', tz='UTC')
  time_columns = {
      'alerts': {'ts', 'window_start', 'window_end', 'detected_at'},
      'window_stats': {'window_start', 'window_end'},
      'dead_letters': {'ts', 'source_timestamp'}}
  for output, schema in SCHEMAS.items():
    assert {f.name for f in schema if f.type == TIMESTAMP} == time_columns[output]


def test_files_are_partitioned_by_hour_and_none_is_temporary(streamed):
  _, archive_dir = streamed
  for output, paths in archive_files(archive_dir).items():
    for path in paths:
      folder, name = os.path.split(path)
      assert folder == FOLDER, path
      assert FILE_NAME.match(name), path
  hidden = [name for _, dirs, names in os.walk(archive_dir) for name in dirs + names
            if name.startswith(('.', '_'))]
  assert hidden == []


def test_a_late_pane_gets_a_file_of_its_own(streamed):
  _, archive_dir = streamed
  alert_files = archive_files(archive_dir)['alerts']
  assert len(alert_files) == 2  # the on-time pane of [0, 10) and its late pane
  ids_per_file = sorted(
      pq.read_table(os.path.join(archive_dir, 'alerts', path))['alert_id'].to_pylist()
      for path in alert_files)
  assert [LATE_ALERT_ID] in ids_per_file


def test_the_entry_point_archives_what_it_writes_as_json_lines(tmp_path):
  readings = tmp_path / 'readings.jsonl'
  lines = [json.dumps(dict(sensor_id='s1', value=v, ts=T0 + t * 1000))
           for t, v in [(1, 10.0), (2, 12.0), (6, 14.0), (7, 100.0), (11, 13.0)]]
  readings.write_text('\n'.join(lines + ['{"broken', 'pump-7']) + '\n')
  archive_dir = tmp_path / 'archive'
  run([f'--input_file={readings}', f'--output_dir={tmp_path / "out"}',
       f'--archive_dir={archive_dir}'] + RULE_ARGS)

  def jsonl(output):
    return [json.loads(line) for path in sorted((tmp_path / 'out' / output).glob('*.jsonl'))
            for line in path.read_text().splitlines()]

  alerts = jsonl('alerts')
  assert len(alerts) == 1  # s1 at 7 s: |100 - 11| = 89
  columns = SCHEMAS['alerts'].names
  assert archived_alerts(str(archive_dir)) == [json_columns(a, columns) for a in alerts]
  dead = read_output(str(archive_dir), 'dead_letters').to_pylist()
  assert sorted(d['payload'] for d in dead) == [b'pump-7', b'{"broken']
  assert len(read_output(str(archive_dir), 'window_stats')) == len(jsonl('window_stats'))

  out = tmp_path / 'alerts.csv'
  assert archive_tool.main(['to-csv', str(archive_dir), '--output', 'alerts', '--out', str(out)]) == 0
  with open(out, newline='') as f:
    rows = list(csv.DictReader(f))
  assert [(r['alert_id'], r['sensor_id'], r['ts'], float(r['value'])) for r in rows] == [
      (a['alert_id'], a['sensor_id'], a['ts'], a['value']) for a in alerts]


# The writer and the tool, without a pipeline.

def make_alert_dict(t_s, value, detected_at_s, **more):
  reading = Reading('s1', value, T0 + t_s * 1000)
  alert = {
      'alert_id': alert_id(reading), 'sensor_id': 's1', 'ts': iso_ms(reading.ts_ms),
      'value': value, 'window_start': iso_ms(T0 - 5000), 'window_end': iso_ms(T0 + 5000),
      'window_mean': 11.0, 'window_stddev': 1.0, 'window_count': 2, 'deviation': value - 11.0,
      'score': value - 11.0, 'rule': 'absolute', 'threshold': 50.0,
      'detected_at': iso_ms(T0 + detected_at_s * 1000)}
  alert.update(more)
  return alert


def write_pane(archive_dir, rows, shard=0):
  """What the pipeline does for one pane of one file group; returns the file's path."""
  fn = _WriteParquetFileFn(str(archive_dir), ARCHIVED_OUTPUTS['alerts'])
  folder = ('alerts',) + partition_dirs(T0)
  [path] = fn.process(((folder, shard), rows), win=IntervalWindow(T0 / 1000, T0 / 1000 + 600))
  return path


def test_unknown_alert_keys_go_to_extra_and_missing_ones_are_null():
  alert = make_alert_dict(7, 100.0, 8, detector='likelihood', seasonal_mean=3.5)
  del alert['score']
  row = alert_row(alert)
  assert json.loads(row['extra']) == {'detector': 'likelihood', 'seasonal_mean': 3.5}
  assert row['score'] is None
  assert row['ts'] == T0 + 7000
  assert alert_row(make_alert_dict(7, 100.0, 8))['extra'] is None
  del alert['alert_id']
  with pytest.raises(ValueError, match='alerts without alert_id'):
    alert_row(alert)


def test_dead_letters_keep_the_original_bytes():
  record = RawRecord(b'\xff\x00{', timestamp_ms=None, key=b'\x01', topic='t', partition=2, offset=9)
  row = dead_letter_row(DeadLetter('invalid_utf8', 'bad byte', record), received_ms=T0)
  assert (row['payload'], row['source_key'], row['ts'], row['source_timestamp']) == (
      b'\xff\x00{', b'\x01', T0, None)


def test_a_retried_pane_overwrites_its_file(tmp_path):
  rows = [alert_row(make_alert_dict(7, 100.0, 8)), alert_row(make_alert_dict(8, 200.0, 9))]
  first = write_pane(tmp_path, rows)
  # The retry runs later (other detected_at) and meets the rows in another order.
  again = [alert_row(make_alert_dict(8, 200.0, 19)), alert_row(make_alert_dict(7, 100.0, 18))]
  assert write_pane(tmp_path, again) == first
  assert archive_files(tmp_path) == {'alerts': [os.path.relpath(first, tmp_path / 'alerts')]}
  assert file_name(0, 0, rows, 'alerts') == file_name(0, 0, again, 'alerts')


def test_a_replay_that_regroups_rows_only_repeats_alert_ids(tmp_path):
  a, b, c = (alert_row(make_alert_dict(t, v, 9)) for t, v in [(6, 80.0), (7, 100.0), (8, 200.0)])
  write_pane(tmp_path, [a, b])       # before the crash: one pane
  write_pane(tmp_path, [c])          # a late pane
  write_pane(tmp_path, [a, b, c])    # after the restart, all in one pane
  # A crash while writing leaves a temporary file, which readers skip.
  (tmp_path / 'alerts' / FOLDER / '.part-x.parquet.0123.tmp').write_bytes(b'PAR1 half a file')
  table = read_output(str(tmp_path), 'alerts')
  assert sorted(table['alert_id'].to_pylist()) == sorted([a['alert_id'], b['alert_id'], c['alert_id']] * 2)
  assert sorted(drop_duplicates(table, 'alerts')['alert_id'].to_pylist()) == sorted(
      [a['alert_id'], b['alert_id'], c['alert_id']])


def test_the_tool_converts_to_csv_dropping_duplicates(tmp_path):
  first, second = alert_row(make_alert_dict(7, 100.0, 8)), alert_row(make_alert_dict(8, 200.0, 9))
  write_pane(tmp_path, [first, second])
  write_pane(tmp_path, [alert_row(make_alert_dict(8, 200.0, 30))])  # a replayed copy of `second`
  out = tmp_path / 'alerts.csv'

  def csv_rows(*flags):
    assert archive_tool.main(['to-csv', str(tmp_path), '--out', str(out), *flags]) == 0
    with open(out, newline='') as f:
      return list(csv.DictReader(f))

  assert [r['alert_id'] for r in csv_rows()] == [first['alert_id']] + [second['alert_id']] * 2
  rows = csv_rows('--dedupe')
  assert [(r['alert_id'], r['ts'], r['value'], r['detected_at']) for r in rows] == [
      (first['alert_id'], iso_ms(T0 + 7000), '100', iso_ms(T0 + 8000)),
      (second['alert_id'], iso_ms(T0 + 8000), '200', iso_ms(T0 + 9000))]  # the first copy
  assert list(rows[0]) == SCHEMAS['alerts'].names


def test_the_tool_shows_a_table(tmp_path, capsys):
  write_pane(tmp_path, [alert_row(make_alert_dict(t, 100.0 + t, 9)) for t in (5, 6, 7)])
  assert archive_tool.main(['show', str(tmp_path), '--limit', '2']) == 0
  lines = capsys.readouterr().out.splitlines()
  assert lines[0].split()[:3] == ['alert_id', 'sensor_id', 'ts']
  assert [line.split()[2] for line in lines[2:4]] == [iso_ms(T0 + 5000), iso_ms(T0 + 6000)]
  assert lines[-1] == '(2 of 3 rows)'
  assert archive_tool.main(['show', str(tmp_path / 'nowhere')]) == 2
  assert 'no such folder' in capsys.readouterr().err


@pytest.mark.parametrize('args, option', [
    (['--archive_dir='], 'archive_dir'),
    (['--archive_dir=nosuchfs://bucket/archive'], 'archive_dir'),
    (['--archive_dir={file}'], 'archive_dir'),
    (['--archive_dir={file}/archive'], 'archive_dir'),
    (['--archive_period=7'], 'archive_period'),
    (['--archive_period=0'], 'archive_period'),
    (['--archive_shards=0'], 'archive_shards'),
])
def test_invalid_archive_options_name_the_option(tmp_path, args, option):
  a_file = tmp_path / 'a_file'
  a_file.write_text('')
  with pytest.raises(InvalidOptionError) as error:
    validate_archive(PipelineOptions([a.format(file=a_file) for a in args]))
  assert error.value.option == option


def test_entry_point_fails_fast_on_a_bad_archive_dir(tmp_path):
  a_file = tmp_path / 'a_file'
  a_file.write_text('')
  result = subprocess.run(
      [sys.executable, '-m', 'pipeline', f'--input_file={a_file}', f'--output_dir={tmp_path}/out',
       f'--archive_dir={a_file}'],
      capture_output=True, text=True, timeout=120)
  assert result.returncode != 0
  assert f'--archive_dir: {a_file} exists and is not a folder' in result.stderr
  assert not (tmp_path / 'out').exists()
