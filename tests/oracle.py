"""A plain-Python reference of the job's default detection, to check Flink runs against.

Deliberately naive (lists and sums, no Beam, no Welford, no slots): a reading at ts is
judged by the newest window that ended at least `lag` before it, i.e. ending at
floor((ts - lag) / period) * period; its baseline is every reading of the same sensor in
that window; it alerts when the baseline is not empty and |value - mean| > threshold (the
`absolute` rule with `trailing` baseline and, by default, the job's default lag).
"""

import bisect
from collections import defaultdict
from typing import Iterable, Set

from pipeline.options import DEFAULT_TRAILING_LAG_S
from transforms.judge import alert_id
from transforms.records import Reading


def expected_alert_ids(readings: Iterable[Reading], size_ms: int, period_ms: int,
                       threshold: float,
                       lag_ms: int = round(DEFAULT_TRAILING_LAG_S * 1000)) -> Set[str]:
  by_sensor = defaultdict(list)
  for reading in readings:
    by_sensor[reading.sensor_id].append(reading)
  alerts = set()
  for sensor_readings in by_sensor.values():
    sensor_readings.sort(key=lambda r: r.ts_ms)
    times = [r.ts_ms for r in sensor_readings]
    for reading in sensor_readings:
      window_end = (reading.ts_ms - lag_ms) // period_ms * period_ms
      first = bisect.bisect_left(times, window_end - size_ms)
      end = bisect.bisect_left(times, window_end)
      baseline = [r.value for r in sensor_readings[first:end]]
      if baseline and abs(reading.value - sum(baseline) / len(baseline)) > threshold:
        alerts.add(alert_id(reading))
  return alerts
