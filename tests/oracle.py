"""A plain-Python reference of the job's default detection, to check Flink runs against.

Deliberately naive (lists and sums, no Beam, no Welford): for every reading, its slot is
[floor(ts / period) * period, + period); its trailing baseline is every reading of the same
sensor in [slot start - size, slot start); it alerts when the baseline is not empty and
|value - mean| > threshold (the `absolute` rule with `trailing` baseline).
"""

import bisect
from collections import defaultdict
from typing import Iterable, Set

from transforms.judge import alert_id
from transforms.records import Reading


def expected_alert_ids(readings: Iterable[Reading], size_ms: int, period_ms: int,
                       threshold: float) -> Set[str]:
  by_sensor = defaultdict(list)
  for reading in readings:
    by_sensor[reading.sensor_id].append(reading)
  alerts = set()
  for sensor_readings in by_sensor.values():
    sensor_readings.sort(key=lambda r: r.ts_ms)
    times = [r.ts_ms for r in sensor_readings]
    for reading in sensor_readings:
      slot_start = reading.ts_ms - reading.ts_ms % period_ms
      first = bisect.bisect_left(times, slot_start - size_ms)
      end = bisect.bisect_left(times, slot_start)
      baseline = [r.value for r in sensor_readings[first:end]]
      if baseline and abs(reading.value - sum(baseline) / len(baseline)) > threshold:
        alerts.add(alert_id(reading))
  return alerts
