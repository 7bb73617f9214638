"""Backtest: replay labelled series through the detectors in batch and write NAB's results layout.

    python -m backtest --data ../shared/nab/data --out .local/nab/results

Every `<category>/<name>.csv` or `<category>/<name>.parquet` under --data
(columns `timestamp`, `value` and optionally `sensor_id`: one series per file,
or per sensor of a file) is read as one sensor's readings at event time
(timestamps in UTC unless they carry a zone) and scored by each detector, a set of the streaming job's own options (DETECTORS),
through backtest/replay.py: the streaming job's baselines and scoring, per
sensor, in event-time order. The results are written as
`<out>/<detector>/<category>/<detector>_<series>.csv` with
`timestamp,value,anomaly_score,label`, one row per input row; a series is
named `<name>.csv`, or `<name>_<sensor_id>.csv` for a file with `sensor_id`.
`label` is 1 inside a labelled window of `combined_windows.json` (--labels, by
default `<data>/../labels/combined_windows.json` when it exists; keys
`<category>/<series>.csv`), else 0.

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
import re
import sys
import time
from datetime import datetime, timezone
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
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
# the day before; the histogram of the deviations that scores them has a half-life
# of about 6 days (500,000 s), and a high score holds off lesser ones for a day.
# No baseline lag: a replay has no alert latency to save, and NAB's readings fall on the
# period grid, so any lag would judge every one of them by a window one period older.
NAB_SCALE = ['--window_size=3600', '--window_period=300', '--trailing_windows=6',
             '--season=86400', '--score_half_life=500000', '--alert_hold=86400',
             '--baseline_lag=0']

# name -> options of the streaming job; the first is the default detector.
DETECTORS: Dict[str, List[str]] = {
    'likelihood': NAB_SCALE + ['--rule=likelihood'],
    'likelihood_noseason': [a for a in NAB_SCALE if not a.startswith('--season')]
                           + ['--rule=likelihood'],
    'zscore': NAB_SCALE[:3] + ['--baseline_lag=0', '--rule=zscore'],
}
DEFAULT_DETECTOR = next(iter(DETECTORS))
NAMESPACE = 'backtest'


SERIES_FORMATS = ('.csv', '.parquet')  # file name endings read by read_series_file


class Series(NamedTuple):
  """One recorded sensor, rows sorted by time: a file `<category>/<name>.csv` or
  `.parquet` (name `<name>.csv`), or one sensor of one (`<name>_<sensor_id>.csv`)."""
  category: str
  name: str
  timestamps: List[str]  # as written in the file (Parquet timestamps: UTC, NAB's format)
  ts_ms: List[int]
  values: List[float]
  raw_values: List[str]  # as written in the file (Parquet numbers: Python's repr)


def _epoch_ms(moment: datetime) -> int:
  if moment.tzinfo is None:
    moment = moment.replace(tzinfo=timezone.utc)
  return round(moment.timestamp() * 1000)


def parse_timestamp_ms(text: str) -> int:
  """`YYYY-MM-DD HH:MM:SS[.ffffff]` (UTC unless a zone is given) -> epoch ms."""
  return _epoch_ms(datetime.fromisoformat(text.strip()))


def _nab_text(moment: datetime) -> str:
  """A Parquet timestamp as NAB writes one: `YYYY-MM-DD HH:MM:SS[.ffffff]`, in UTC."""
  if moment.tzinfo is not None:
    moment = moment.astimezone(timezone.utc)
  return moment.strftime('%Y-%m-%d %H:%M:%S' + ('.%f' if moment.microsecond else ''))


def _series_name(stem: str, sensor: Optional[str]) -> str:
  if sensor is None:
    return f'{stem}.csv'
  return f"{stem}_{re.sub(r'[^A-Za-z0-9._-]', '_', sensor)}.csv"  # a safe file name


def _split_series(path: str, category: str, stem: str, sensors: Optional[List[str]],
                  columns: Tuple[list, list, list, list]) -> List[Series]:
  """(timestamps, ts_ms, values, raw_values) of a file -> one Series per sensor, sorted by time."""
  if sensors is None:
    groups = {None: range(len(columns[1]))}
  else:
    groups = {}
    for i, sensor in enumerate(sensors):
      groups.setdefault(sensor, []).append(i)
  series = []
  for sensor in sorted(groups, key=str):
    rows = sorted(groups[sensor], key=columns[1].__getitem__)  # stable: ties keep file order
    picked = [[col[i] for i in rows] for col in columns]
    series.append(Series(category, _series_name(stem, sensor), *picked))
  names = [s.name for s in series]
  if len(set(names)) < len(names):
    raise ValueError(f'{path}: sensor ids that differ only in characters unsafe in file names')
  return series


def _read_csv(path: str) -> Tuple[Optional[List[str]], Tuple[list, list, list, list]]:
  timestamps, ts_ms, values, raw_values = [], [], [], []
  sensors: Optional[List[str]] = None
  with open(path, newline='') as f:
    rows = csv.reader(f)
    header = [h.strip() for h in next(rows, None) or ()]
    if 'timestamp' not in header or 'value' not in header:
      raise ValueError(f'{path}: expected a header "timestamp,value[,sensor_id]", got {header}')
    t_col, v_col = header.index('timestamp'), header.index('value')
    s_col = header.index('sensor_id') if 'sensor_id' in header else None
    if s_col is not None:
      sensors = []
    for line, row in enumerate(rows, start=2):
      try:
        ts, value = parse_timestamp_ms(row[t_col]), float(row[v_col])
        if s_col is not None:
          sensors.append(row[s_col])
      except (IndexError, ValueError) as error:
        raise ValueError(f'{path}:{line}: {error}') from None
      timestamps.append(row[t_col])
      ts_ms.append(ts)
      values.append(value)
      raw_values.append(row[v_col])
  return sensors, (timestamps, ts_ms, values, raw_values)


def _read_parquet(path: str) -> Tuple[Optional[List[str]], Tuple[list, list, list, list]]:
  """`timestamp` a timestamp (UTC unless it has a zone) or a string as in NAB's CSVs."""
  table = pq.read_table(path)
  if 'timestamp' not in table.column_names or 'value' not in table.column_names:
    raise ValueError(f'{path}: expected columns timestamp, value[, sensor_id], '
                     f'got {table.column_names}')
  stamps = table.column('timestamp')
  if pa.types.is_timestamp(stamps.type):
    if stamps.type.unit == 'ns':  # Python's datetime holds microseconds
      stamps = stamps.cast(pa.timestamp('us', tz=stamps.type.tz), safe=False)
    parse, text = _epoch_ms, _nab_text
  elif pa.types.is_string(stamps.type) or pa.types.is_large_string(stamps.type):
    parse, text = parse_timestamp_ms, str
  else:
    raise ValueError(f'{path}: column timestamp must be a timestamp or a string, not {stamps.type}')
  sensors = (table.column('sensor_id').to_pylist()
             if 'sensor_id' in table.column_names else None)
  timestamps, ts_ms, values, raw_values = [], [], [], []
  for row, (stamp, raw) in enumerate(zip(stamps.to_pylist(), table.column('value').to_pylist())):
    try:
      if stamp is None or raw is None or (sensors is not None and sensors[row] is None):
        raise ValueError('null timestamp, value or sensor_id')
      ts_ms.append(parse(stamp))
      values.append(float(raw))
    except (TypeError, ValueError) as error:
      raise ValueError(f'{path}: row {row}: {error}') from None
    timestamps.append(text(stamp))
    raw_values.append(raw if isinstance(raw, str) else repr(raw))
  if sensors is not None:
    sensors = [str(s) for s in sensors]
  return sensors, (timestamps, ts_ms, values, raw_values)


def read_series_file(data_dir: str, key: str) -> List[Series]:
  """Reads `<data_dir>/<key>` (CSV or Parquet, by its name): one Series, or one per sensor
  when the file has a `sensor_id` column. Raises ValueError naming the file and the bad row."""
  path = os.path.join(data_dir, key)
  category, name = key.split('/', 1)
  stem, ext = os.path.splitext(name)
  if ext not in SERIES_FORMATS:
    raise ValueError(f'{path}: not one of {", ".join(SERIES_FORMATS)}')
  sensors, columns = (_read_parquet if ext == '.parquet' else _read_csv)(path)
  return _split_series(path, category, stem, sensors, columns)


def read_series(data_dir: str, key: str) -> Series:
  """The one series of a single-sensor file (see read_series_file)."""
  series = read_series_file(data_dir, key)
  if len(series) != 1:
    raise ValueError(f'{os.path.join(data_dir, key)}: {len(series)} sensors, not one')
  return series[0]


def find_series(data_dir: str) -> List[str]:
  """Every `<category>/<name>.csv` and `.parquet` under data_dir, sorted (hidden files skipped)."""
  keys = []
  for category in sorted(os.listdir(data_dir)):
    folder = os.path.join(data_dir, category)
    if os.path.isdir(folder):
      keys += [f'{category}/{n}' for n in sorted(os.listdir(folder))
               if n.endswith(SERIES_FORMATS) and not n.startswith(('.', '_'))]
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
    self._series = Metrics.counter(NAMESPACE, 'series')

  def process(self, key: str):
    for series in read_series_file(self._data_dir, key):
      self._readings.inc(len(series.values))
      self._series.inc()
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

  def __init__(self, out_dir: str, windows: Dict[str, List[Tuple[int, int]]]):
    self._out_dir = out_dir
    self._windows = windows
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
    logger.info('[%d] %s/%s: %d readings', self._done, detector, key, len(scores))
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
    raise FileNotFoundError(f'no <category>/<name>.csv or .parquet under {data_dir}')
  configs = {name: detector_config(DETECTORS[name]) for name in detectors}
  windows = load_windows(labels_path)
  started = time.perf_counter()
  p = beam.Pipeline(options=PipelineOptions(list(beam_args)))
  _ = (p
       | 'SeriesFiles' >> beam.Create(keys)
       | 'ReadSeries' >> beam.ParDo(_ReadSeriesFn(data_dir))
       | 'Score' >> beam.ParDo(_ScoreSeriesFn(configs))
       | 'WriteResults' >> beam.ParDo(_WriteResultsFn(out_dir, windows)))
  result = p.run()
  result.wait_until_finish()
  seconds = time.perf_counter() - started
  def counter(name):
    return sum(c.committed for c in result.metrics().query(MetricsFilter().with_name(name))['counters'])
  return {'readings': counter('readings'), 'series': counter('series'), 'seconds': seconds}


def default_labels(data_dir: str) -> Optional[str]:
  path = os.path.join(data_dir, os.pardir, 'labels', 'combined_windows.json')
  return path if os.path.exists(path) else None


def main(argv: Optional[List[str]] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--data', required=True, help='folder of <category>/<name>.csv or .parquet files')
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
