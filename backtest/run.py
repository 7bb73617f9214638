"""Backtest: replay labelled series through the detectors in batch and write NAB's results layout.

    python -m backtest --data ../shared/nab/data --out .local/nab/results

Every `<category>/<name>.csv` (`timestamp,value`, one sensor per file) under
--data is read as one sensor's readings at event time (timestamps in UTC) and
scored by each detector, a set of the streaming job's own options (DETECTORS),
through backtest/replay.py: the streaming job's baselines and scoring, per
sensor, in event-time order. The results are written as
`<out>/<detector>/<category>/<detector>_<name>.csv` with
`timestamp,value,anomaly_score,label`, one row per input row; `label` is 1
inside a labelled window of `combined_windows.json` (--labels, by default
`<data>/../labels/combined_windows.json` when it exists), else 0.

The pipeline runs on the DirectRunner's batch engine with one element per
series, so the per-reading work is plain Python: see docs/detection.md for
why, and for the measured throughput.
"""

import argparse
import bisect
import csv
import json
import logging
import os
import sys
import time
from datetime import datetime, timezone
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from backtest.replay import replay_series
from pipeline.build import make_rule, make_shape
from transforms.baseline import BaselineShape
from transforms.rules import Rule

logger = logging.getLogger(__name__)

# One configuration for every NAB series (5-minute samples, daily patterns):
# statistics of 1-hour windows every 5 minutes; the trailing baseline is the
# last 6 hours (six windows), the seasonal one the hour around the same time
# the day before; the deviation's own statistics have a half-life of about
# 1.7 days, and a high score holds off lower ones for two days.
NAB_SCALE = ['--window_size=3600', '--window_period=300', '--trailing_windows=6',
             '--season=86400', '--score_half_life=150000', '--alert_hold=172800']

# name -> options of the streaming job; the first is the default detector.
DETECTORS: Dict[str, List[str]] = {
    'likelihood': NAB_SCALE + ['--rule=likelihood'],
    'likelihood_noseason': [a for a in NAB_SCALE if not a.startswith('--season')]
                           + ['--rule=likelihood'],
    'zscore': NAB_SCALE[:3] + ['--rule=zscore'],
}
DEFAULT_DETECTOR = next(iter(DETECTORS))
NAMESPACE = 'backtest'


class Series(NamedTuple):
  """One recorded sensor: a file `<category>/<name>.csv`, rows sorted by time."""
  category: str
  name: str
  timestamps: List[str]  # as written in the file
  ts_ms: List[int]
  values: List[float]
  raw_values: List[str]  # as written in the file


def parse_timestamp_ms(text: str) -> int:
  """`YYYY-MM-DD HH:MM:SS[.ffffff]` (UTC unless a zone is given) -> epoch ms."""
  moment = datetime.fromisoformat(text.strip())
  if moment.tzinfo is None:
    moment = moment.replace(tzinfo=timezone.utc)
  return round(moment.timestamp() * 1000)


def read_series(data_dir: str, key: str) -> Series:
  """Reads `<data_dir>/<key>`; raises ValueError naming the file and line of a bad row."""
  path = os.path.join(data_dir, key)
  category, name = key.split('/', 1)
  timestamps, ts_ms, values, raw_values = [], [], [], []
  with open(path, newline='') as f:
    rows = csv.reader(f)
    header = next(rows, None)
    if header is None or [h.strip() for h in header[:2]] != ['timestamp', 'value']:
      raise ValueError(f'{path}: expected a header "timestamp,value", got {header}')
    for line, row in enumerate(rows, start=2):
      try:
        ts, value = parse_timestamp_ms(row[0]), float(row[1])
      except (IndexError, ValueError) as error:
        raise ValueError(f'{path}:{line}: {error}') from None
      timestamps.append(row[0])
      ts_ms.append(ts)
      values.append(value)
      raw_values.append(row[1])
  order = sorted(range(len(ts_ms)), key=ts_ms.__getitem__)
  if any(a > b for a, b in zip(order, order[1:])):  # not already sorted: sort all columns
    timestamps, ts_ms, values, raw_values = (
        [col[i] for i in order] for col in (timestamps, ts_ms, values, raw_values))
  return Series(category, name, timestamps, ts_ms, values, raw_values)


def find_series(data_dir: str) -> List[str]:
  """Every `<category>/<name>.csv` under data_dir, sorted."""
  keys = []
  for category in sorted(os.listdir(data_dir)):
    folder = os.path.join(data_dir, category)
    if os.path.isdir(folder):
      keys += [f'{category}/{n}' for n in sorted(os.listdir(folder)) if n.endswith('.csv')]
  return keys


def load_windows(labels_path: Optional[str]) -> Dict[str, List[Tuple[int, int]]]:
  """{'<category>/<name>.csv': [(start_ms, end_ms), ...]} from NAB's combined_windows.json."""
  if not labels_path:
    return {}
  with open(labels_path) as f:
    return {key: [(parse_timestamp_ms(a), parse_timestamp_ms(b)) for a, b in windows]
            for key, windows in json.load(f).items()}


def labels_of(ts_ms: Sequence[int], windows: Sequence[Tuple[int, int]]) -> List[int]:
  labels = [0] * len(ts_ms)
  for start, end in windows:
    for i in range(bisect.bisect_left(ts_ms, start), bisect.bisect_right(ts_ms, end)):
      labels[i] = 1
  return labels


class _ReadSeriesFn(beam.DoFn):

  def __init__(self, data_dir: str):
    self._data_dir = data_dir
    self._readings = Metrics.counter(NAMESPACE, 'readings')

  def process(self, key: str):
    series = read_series(self._data_dir, key)
    self._readings.inc(len(series.values))
    yield series


class _ScoreSeriesFn(beam.DoFn):
  """Series -> (detector, Series, scores) for each detector."""

  def __init__(self, detectors: Dict[str, Tuple[Rule, BaselineShape]]):
    self._detectors = detectors

  def process(self, series: Series):
    for name, (rule, shape) in self._detectors.items():
      yield name, series, replay_series(series.ts_ms, series.values, rule, shape)


class _WriteResultsFn(beam.DoFn):
  """Writes one results file; the same input always writes the same file (safe to retry)."""

  def __init__(self, out_dir: str, windows: Dict[str, List[Tuple[int, int]]], total: int):
    self._out_dir = out_dir
    self._windows = windows
    self._total = total
    self._done = 0

  def process(self, element):
    detector, series, scores = element
    key = f'{series.category}/{series.name}'
    labels = labels_of(series.ts_ms, self._windows.get(key, ()))
    folder = os.path.join(self._out_dir, detector, series.category)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f'{detector}_{series.name}')
    with open(path, 'w', newline='') as f:
      out = csv.writer(f, lineterminator='\n')
      out.writerow(('timestamp', 'value', 'anomaly_score', 'label'))
      out.writerows(zip(series.timestamps, series.raw_values, (repr(s) for s in scores), labels))
    self._done += 1
    logger.info('[%d/%d] %s/%s: %d readings', self._done, self._total, detector, key, len(scores))
    yield path


def detector_config(args: Sequence[str]) -> Tuple[Rule, BaselineShape]:
  options = PipelineOptions(list(args))
  return make_rule(options), make_shape(options)


def run_backtest(data_dir: str, out_dir: str, detectors: Sequence[str] = tuple(DETECTORS),
                 labels_path: Optional[str] = None,
                 beam_args: Sequence[str] = ('--runner=FnApiRunner',)) -> Dict[str, float]:
  """Writes the results of every series under data_dir; returns readings, series, seconds."""
  keys = find_series(data_dir)
  if not keys:
    raise FileNotFoundError(f'no <category>/<name>.csv under {data_dir}')
  configs = {name: detector_config(DETECTORS[name]) for name in detectors}
  windows = load_windows(labels_path)
  started = time.perf_counter()
  p = beam.Pipeline(options=PipelineOptions(list(beam_args)))
  _ = (p
       | 'SeriesFiles' >> beam.Create(keys)
       | 'ReadSeries' >> beam.ParDo(_ReadSeriesFn(data_dir))
       | 'Score' >> beam.ParDo(_ScoreSeriesFn(configs))
       | 'WriteResults' >> beam.ParDo(_WriteResultsFn(out_dir, windows, len(keys) * len(configs))))
  result = p.run()
  result.wait_until_finish()
  seconds = time.perf_counter() - started
  counters = result.metrics().query(MetricsFilter().with_name('readings'))['counters']
  readings = sum(c.committed for c in counters)
  return {'readings': readings, 'series': len(keys), 'seconds': seconds}


def default_labels(data_dir: str) -> Optional[str]:
  path = os.path.join(data_dir, os.pardir, 'labels', 'combined_windows.json')
  return path if os.path.exists(path) else None


def main(argv: Optional[List[str]] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--data', required=True, help='folder of <category>/<name>.csv files')
  parser.add_argument('--out', required=True, help='results folder (NAB layout)')
  parser.add_argument('--labels', help='combined_windows.json (default: <data>/../labels/...)')
  parser.add_argument('--detector', action='append', choices=list(DETECTORS),
                      help=f'detector(s) to run, of {", ".join(DETECTORS)} (default: {DEFAULT_DETECTOR})')
  parser.add_argument('--all', action='store_true', help='run every detector')
  args, beam_args = parser.parse_known_args(argv)
  detectors = tuple(DETECTORS) if args.all else tuple(args.detector or (DEFAULT_DETECTOR,))
  logging.basicConfig(level=logging.INFO, format='%(message)s')
  logging.getLogger('apache_beam').setLevel(logging.WARNING)
  run = run_backtest(args.data, args.out, detectors,
                     args.labels or default_labels(args.data),
                     beam_args or ('--runner=FnApiRunner',))
  print('backtest: %d readings in %d series, %d detector(s), %.2f s: %.0f readings/s' % (
      run['readings'], run['series'], len(detectors), run['seconds'],
      run['readings'] / run['seconds']))
  return 0


if __name__ == '__main__':
  sys.exit(main())
