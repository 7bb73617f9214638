"""The backtest reads Parquet as well as CSV: the same readings give the same results."""

import csv
import random
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from backtest.run import find_series, read_series, read_series_file, run_backtest
from transforms.rules import DEFAULT_THRESHOLDS, LIKELIHOOD

N = 600  # 5-minute readings: a little over two days, so the seasonal baseline is used


def stamps():
  return [f'2014-04-{1 + i // 288:02d} {(i % 288) // 12:02d}:{(i % 12) * 5:02d}:00' for i in range(N)]


def series_values(seed, spike_at):
  rng = random.Random(seed)
  return [300.5 if i == spike_at else round(20 + rng.gauss(0, 1), 2) for i in range(N)]


def as_datetime(text):
  return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def write_csv(path, rows, header=('timestamp', 'value')):
  path.parent.mkdir(parents=True, exist_ok=True)
  with open(path, 'w', newline='') as f:
    out = csv.writer(f, lineterminator='\n')
    out.writerow(header)
    # repr: the text Parquet's doubles are written back as, so whole files compare
    out.writerows((*row[:-1], repr(row[-1])) for row in rows)


def write_parquet(path, columns, schema):
  path.parent.mkdir(parents=True, exist_ok=True)
  pq.write_table(pa.table(columns, schema=schema), path)


def results(out, detector, category, name):
  with open(out / detector / category / f'{detector}_{name}') as f:
    return list(csv.DictReader(f))


@pytest.fixture
def same_series(tmp_path):
  """One series three ways: CSV, Parquet with a timestamp column, Parquet with text times."""
  times, values = stamps(), series_values(5, spike_at=450)
  order = list(range(N))
  random.Random(1).shuffle(order)  # rows out of order: sorted by the reader
  times, values = [times[i] for i in order], [values[i] for i in order]
  write_csv(tmp_path / 'csv' / 'cat' / 'plant.csv', list(zip(times, values)))
  write_parquet(tmp_path / 'typed' / 'cat' / 'plant.parquet',
                {'timestamp': [as_datetime(t) for t in times], 'value': values},
                pa.schema([('timestamp', pa.timestamp('ms', tz='UTC')), ('value', pa.float64())]))
  write_parquet(tmp_path / 'text' / 'cat' / 'plant.parquet', {'timestamp': times, 'value': values},
                pa.schema([('timestamp', pa.string()), ('value', pa.float64())]))
  return tmp_path


def test_parquet_scores_equal_the_csv_scores(same_series):
  out = same_series / 'results'
  for source in ('csv', 'typed', 'text'):
    run = run_backtest(str(same_series / source), str(out / source), ('likelihood', 'zscore'))
    assert (run['readings'], run['series']) == (N, 1)
  for detector in ('likelihood', 'zscore'):
    from_csv = results(out / 'csv', detector, 'cat', 'plant.csv')
    assert len(from_csv) == N
    for source in ('typed', 'text'):
      rows = results(out / source, detector, 'cat', 'plant.csv')
      assert [r['anomaly_score'] for r in rows] == [r['anomaly_score'] for r in from_csv]
      assert rows == from_csv  # timestamps and values written as in the CSV, too
  spike = next(r for r in results(out / 'typed', 'likelihood', 'cat', 'plant.csv')
               if r['timestamp'] == '2014-04-02 13:30:00')
  assert spike['value'] == '300.5' and float(spike['anomaly_score']) > DEFAULT_THRESHOLDS[LIKELIHOOD]


def test_a_parquet_file_with_sensor_id_gives_one_series_per_sensor(tmp_path):
  sensors = {'s1': series_values(1, spike_at=450), 's2': series_values(2, spike_at=500),
             'line/3': series_values(3, spike_at=None)}  # a '/' must not make a folder
  rows = [(sensor, t, v) for sensor, values in sensors.items() for t, v in zip(stamps(), values)]
  random.Random(2).shuffle(rows)  # sensors interleaved, times out of order
  write_parquet(tmp_path / 'many' / 'cat' / 'plant.parquet',
                {'sensor_id': [r[0] for r in rows], 'timestamp': [as_datetime(r[1]) for r in rows],
                 'value': [r[2] for r in rows]},
                pa.schema([('sensor_id', pa.string()), ('timestamp', pa.timestamp('us')),
                           ('value', pa.float64())]))
  for sensor, values in sensors.items():  # the same sensors, one CSV each
    write_csv(tmp_path / 'one' / 'cat' / f"plant_{sensor.replace('/', '_')}.csv",
              list(zip(stamps(), values)))

  assert [s.name for s in read_series_file(str(tmp_path / 'many'), 'cat/plant.parquet')] == [
      'plant_line_3.csv', 'plant_s1.csv', 'plant_s2.csv']
  with pytest.raises(ValueError, match='3 sensors, not one'):
    read_series(str(tmp_path / 'many'), 'cat/plant.parquet')
  out = tmp_path / 'results'
  run = run_backtest(str(tmp_path / 'many'), str(out / 'many'), ('likelihood',))
  assert (run['readings'], run['series']) == (3 * N, 3)
  run_backtest(str(tmp_path / 'one'), str(out / 'one'), ('likelihood',))
  written = sorted(p.name for p in (out / 'many' / 'likelihood' / 'cat').iterdir())
  assert written == ['likelihood_plant_line_3.csv', 'likelihood_plant_s1.csv',
                     'likelihood_plant_s2.csv']
  for name in written:
    assert (out / 'many' / 'likelihood' / 'cat' / name).read_text() == (
        out / 'one' / 'likelihood' / 'cat' / name).read_text()


def test_csv_with_sensor_id_and_bad_parquet_files(tmp_path):
  write_csv(tmp_path / 'c' / 'mixed.csv',
            [('b', '2014-04-01 00:05:00', 2.0), ('a', '2014-04-01 00:00:00', 1.0),
             ('b', '2014-04-01 00:00:00', 3.0)], header=('sensor_id', 'timestamp', 'value'))
  a, b = read_series_file(str(tmp_path), 'c/mixed.csv')
  assert (a.name, a.values, b.name, b.values) == ('mixed_a.csv', [1.0], 'mixed_b.csv', [3.0, 2.0])
  write_parquet(tmp_path / 'c' / 'ints.parquet', {'timestamp': [1, 2], 'value': [1.0, 2.0]},
                pa.schema([('timestamp', pa.int64()), ('value', pa.float64())]))
  with pytest.raises(ValueError, match='timestamp must be a timestamp or a string'):
    read_series_file(str(tmp_path), 'c/ints.parquet')
  write_parquet(tmp_path / 'c' / 'nulls.parquet',
                {'timestamp': ['2014-04-01 00:00:00', '2014-04-01 00:05:00'], 'value': [1.0, None]},
                pa.schema([('timestamp', pa.string()), ('value', pa.float64())]))
  with pytest.raises(ValueError, match=r'nulls\.parquet: row 1: null'):
    read_series_file(str(tmp_path), 'c/nulls.parquet')
  (tmp_path / 'c' / '.hidden.parquet').write_bytes(b'')
  assert find_series(str(tmp_path)) == ['c/ints.parquet', 'c/mixed.csv', 'c/nulls.parquet']
