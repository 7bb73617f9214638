"""The backtest: same scores as the streaming job, NAB's results layout, make nab's output."""

import csv
import json
import math
import os
import random

import pytest

from backtest import nab, nab_score
from backtest.replay import replay_series, window_stats
from backtest.run import DEFAULT_DETECTOR, read_series, run_backtest
from pipeline.build import make_rule, make_shape
from transforms.judge import SCORE_ORDERS
from apache_beam.options.pipeline_options import PipelineOptions
from tests import streaming
from tests.streaming import T0, json_record

NAB = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), os.pardir, 'shared', 'nab')


def test_window_stats_by_prefix_sums():
  import numpy as np
  ts = np.array([0, 1000, 2000, 3000, 4000])
  values = np.array([10.0, 12.0, 50.0, 7.0, 9.0])
  first, empty, last = window_stats(ts, values, np.array([0, 5000, 3000]), np.array([3000, 9000, 5000]))
  # [0, 3 s): {10, 12, 50}: mean 24, sample variance (196 + 144 + 676) / 2 = 508
  assert (first.count, first.mean, first.variance) == (3, pytest.approx(24.0), pytest.approx(508.0))
  assert empty is None
  # [3, 5 s): {7, 9}: mean 8, variance (1 + 1) / 1 = 2
  assert (last.count, last.mean, last.variance) == (2, pytest.approx(8.0), pytest.approx(2.0))


# A small-scale version of the NAB configuration: 20 s windows every 5 s, two of them
# trailing (40 s), a 60 s season; threshold 0 so that every scored reading alerts.
SMALL_SCALE = ['--window_size=20', '--window_period=5', '--trailing_windows=2', '--season=60',
               '--score_half_life=100', '--alert_hold=30', '--rule=likelihood', '--threshold=0',
               '--allowed_lateness=600']


def synthetic(sensor, seed, n=120):
  """One reading every 5 s: a 60 s cycle plus noise, a level shift at 400 s and a spike at 500 s."""
  rng = random.Random(seed)
  out = []
  for i in range(n):
    t = 5 * i + 1
    value = 50 + 10 * math.sin(2 * math.pi * t / 60) + rng.gauss(0, 1)
    value += 15 if t >= 400 else 0
    value += 80 if t == 501 else 0
    out.append((t, round(value, 3)))
  return out


@pytest.mark.parametrize('score_order', SCORE_ORDERS)
def test_backtest_scores_equal_the_streaming_jobs(score_order):
  # each sensor's readings in event-time order: both score orders give the replay's scores
  series = {'a': synthetic('a', 1), 'b': synthetic('b', 2)}
  records = [json_record(s, v, t) for s, rows in series.items() for t, v in rows]
  outputs, _ = streaming.run_stream([('add', records)],
                                    [*SMALL_SCALE, f'--score_order={score_order}'])
  streamed = {(a['sensor_id'], a['value']): a['score'] for a in outputs['alerts']}
  options = PipelineOptions(SMALL_SCALE)
  rule, shape = make_rule(options), make_shape(options)
  replayed = {}
  for sensor, rows in series.items():
    ts_ms = [T0 + t * 1000 for t, _ in rows]
    scores = replay_series(ts_ms, [v for _, v in rows], rule, shape)
    replayed.update({(sensor, v): s for (_, v), s in zip(rows, scores) if s > 0})
  assert len(replayed) > 60  # many readings score above 0, so this compares real numbers
  assert streamed.keys() == replayed.keys()
  for key, score in replayed.items():
    assert streamed[key] == pytest.approx(score, rel=1e-6, abs=1e-9), key
  # the spike is the strongest score of each sensor
  for sensor in series:
    top = max((s, v) for (name, v), s in replayed.items() if name == sensor)
    assert top[1] > 100


def test_replayed_bounds_say_which_readings_alert():
  # No hold, so a reading's score is its raw score: above the threshold exactly when the
  # value is outside the bounds an alert about it reports (the range part aside).
  args = [a for a in SMALL_SCALE if not a.startswith(('--alert_hold', '--threshold'))]
  options = PipelineOptions(args + ['--alert_hold=0', '--threshold=0.3'])
  rule, shape = make_rule(options), make_shape(options)
  rows = synthetic('a', 1, n=400)
  explanations = []
  scores = replay_series([T0 + t * 1000 for t, _ in rows], [v for _, v in rows], rule, shape,
                         explanations)
  assert len(explanations) == len(rows)
  checked = 0
  for (_, value), score, explained in zip(rows, scores, explanations):
    if explained and explained['fired'] != 'range' and score > 0:
      outside = explained['lower'] is not None and not (
          explained['lower'] <= value <= explained['upper'])
      assert outside == (score > 0.3), (value, score, explained)
      assert explained['direction'] == ('above' if value >= explained['expected'] else 'below')
      checked += 1
  assert checked > 300 and sum(s > 0.3 for s in scores) >= 2  # the spike, the shift


def write_csv(path, rows):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'w') as f:
    f.write('timestamp,value\n')
    f.writelines(f'{t},{v}\n' for t, v in rows)


@pytest.fixture
def tiny_nab(tmp_path):
  """Two categories, three series of 5-minute readings, one labelled window."""
  data = tmp_path / 'data'
  rng = random.Random(3)
  stamps = [f'2014-04-{1 + i // 288:02d} {(i % 288) // 12:02d}:{(i % 12) * 5:02d}:00' for i in range(600)]
  flat = [(s, 10) for s in stamps]
  noisy = [(s, round(20 + rng.gauss(0, 1), 2)) for s in stamps]
  spiky = [(s, 300.5 if i == 450 else round(20 + rng.gauss(0, 1), 2)) for i, s in enumerate(stamps)]
  write_csv(str(data / 'catA' / 'flat.csv'), flat)
  write_csv(str(data / 'catA' / 'noisy.csv'), noisy)
  write_csv(str(data / 'catB' / 'spiky.csv'), list(reversed(spiky)))  # out of order on purpose
  labels = tmp_path / 'labels'
  labels.mkdir()
  windows = {'catA/flat.csv': [], 'catA/noisy.csv': [],
             'catB/spiky.csv': [['2014-04-02 13:00:00.000000', '2014-04-02 15:00:00.000000']]}
  (labels / 'combined_windows.json').write_text(json.dumps(windows))
  (labels / 'profiles.json').write_text(json.dumps({'standard': {'CostMatrix': {
      'tpWeight': 1.0, 'fnWeight': 1.0, 'fpWeight': 0.11}}}))
  return tmp_path


def test_backtest_writes_nabs_results_layout(tiny_nab):
  out = tiny_nab / 'results'
  run = run_backtest(str(tiny_nab / 'data'), str(out), ('likelihood', 'zscore'),
                     str(tiny_nab / 'labels' / 'combined_windows.json'))
  assert (run['readings'], run['series']) == (1800, 3)
  for detector in ('likelihood', 'zscore'):
    for key in ('catA/flat.csv', 'catA/noisy.csv', 'catB/spiky.csv'):
      category, name = key.split('/')
      path = out / detector / category / f'{detector}_{name}'
      with open(path) as f:
        rows = list(csv.DictReader(f))
      source = read_series(str(tiny_nab / 'data'), key)
      assert list(rows[0]) == ['timestamp', 'value', 'anomaly_score', 'label']
      assert [r['timestamp'] for r in rows] == source.timestamps  # sorted, as written
      assert [r['value'] for r in rows] == source.raw_values
      assert all(0.0 <= float(r['anomaly_score']) <= 1.0 for r in rows)
  with open(out / 'likelihood' / 'catB' / 'likelihood_spiky.csv') as f:
    rows = list(csv.DictReader(f))
  # 13:00 to 15:00 inclusive, every 5 minutes: 25 rows labelled
  assert sum(int(r['label']) for r in rows) == 25
  # the spike (row 450 = 2014-04-02 13:30) is far from its baseline: above the threshold
  # (600 rows are too few for the seen-range rule, which waits for 1000)
  spike = next(r for r in rows if r['timestamp'] == '2014-04-02 13:30:00')
  assert spike['value'] == '300.5' and float(spike['anomaly_score']) > 0.5
  # the flat series never scores
  with open(out / 'likelihood' / 'catA' / 'likelihood_flat.csv') as f:
    assert {r['anomaly_score'] for r in csv.DictReader(f)} == {'0.0'}
  scores = nab_score.score_detector(str(out), 'likelihood', str(tiny_nab / 'labels'))
  assert scores['standard']['tp'] == 1


def test_bad_row_is_reported_with_file_and_line(tmp_path):
  write_csv(str(tmp_path / 'c' / 's.csv'), [('2014-04-01 00:00:00', 1), ('2014-04-01 00:05:00', 'x')])
  with pytest.raises(ValueError, match=r's\.csv:3: could not convert'):
    read_series(str(tmp_path), 'c/s.csv')


def test_make_nab_prints_the_table_and_the_default_score(capsys, tmp_path):
  if not os.path.isdir(os.path.join(NAB, 'data')):
    pytest.skip('shared NAB subset not found at %s' % os.path.normpath(NAB))
  assert nab.main(['--nab', NAB, '--out', str(tmp_path / 'results')]) == 0
  lines = capsys.readouterr().out.strip().splitlines()
  assert lines[-1].startswith('nab standard: ')
  default = float(lines[-1].split(': ')[1])
  row = next(line for line in lines if line.startswith(DEFAULT_DETECTOR + ' '))
  assert float(row.split()[2]) == default
  assert any(line.startswith('numenta ') for line in lines)
  assert default >= 50.0  # the target for the default detector
