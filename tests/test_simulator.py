"""The simulator's generator: counts, ground truth, and anomalies the default rule can see."""

import json
from collections import Counter

from runners.simulator import generate, truth_line
from transforms.parse import RecordParser
from transforms.records import DeadLetter, RawRecord


def test_counts_and_truth():
  records = list(generate(sensors=10, total=20000, rate=500, start_ms=1_700_000_000_000,
                          anomalies=20, malformed=50, seed=3))
  kinds = Counter(r.kind for r in records)
  assert kinds['malformed'] == 50
  assert kinds['spike'] + kinds['dip'] + kinds['level_shift'] == 20
  assert sum(v for k, v in kinds.items() if k != "malformed") == 20000
  parser = RecordParser()
  for r in records:
    parsed = parser.parse(RawRecord(r.payload, timestamp_ms=r.ts_ms))
    if r.kind == 'malformed':
      assert isinstance(parsed, DeadLetter) and parsed.reason == r.reason
    else:
      assert not isinstance(parsed, DeadLetter)
      assert parsed.sensor_id == r.sensor_id and parsed.value == r.value
    line = truth_line(r)
    assert (line is None) == (r.kind == 'normal')
    if line and r.kind != 'malformed':
      assert json.loads(line)['alert_id']


def test_same_seed_same_stream_and_csv_format():
  a = list(generate(5, 3000, 20, 0, 3, 2, seed=9))
  b = list(generate(5, 3000, 20, 0, 3, 2, seed=9))
  assert a == b
  csv = [r for r in generate(5, 3000, 20, 1_700_000_000_000, 3, 0, seed=9, fmt='csv')]
  assert csv[0].payload.decode().count(',') == 1
