"""The benchmark's arithmetic, kept pure so that tests can check it without Kafka or Flink.

- percentile: nearest-rank percentiles of alert latencies (no interpolation: a p99 is a
  latency some alert really had);
- lag_verdict: whether consumer lag stayed bounded over a measuring window;
- next_rate: the step search for the highest offered rate whose lag stays bounded;
- matched_latencies: alert latencies of a job whose alerts do not carry their reading's time
  (the original Java job).
"""

import math
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple


def percentile(values: Sequence[float], p: float) -> Optional[float]:
  """Nearest-rank percentile (p in [0, 100]) of values; None when there are none."""
  if not 0 <= p <= 100:
    raise ValueError(f'p must be in [0, 100], got {p}')
  if not values:
    return None
  ordered = sorted(values)
  rank = max(1, math.ceil(p / 100 * len(ordered)))
  return ordered[rank - 1]


def slope(points: Sequence[Tuple[float, float]]) -> float:
  """Least-squares slope dy/dx of (x, y) points; 0 for fewer than two distinct x."""
  n = len(points)
  if n < 2:
    return 0.0
  mean_x = sum(x for x, _ in points) / n
  mean_y = sum(y for _, y in points) / n
  sxx = sum((x - mean_x) ** 2 for x, _ in points)
  if sxx == 0:
    return 0.0
  return sum((x - mean_x) * (y - mean_y) for x, y in points) / sxx


class Sample(NamedTuple):
  """One look at the job: seconds since the load started, records produced and consumed."""
  t: float
  produced: int
  consumed: int

  @property
  def lag(self) -> int:
    return self.produced - self.consumed


class LagVerdict(NamedTuple):
  bounded: bool
  produced_rps: float  # what the load generator really achieved in the window
  consumed_rps: float
  lag_slope_rps: float  # growth of the lag, records/s
  lag_start: int
  lag_end: int
  reason: str


def lag_verdict(samples: Sequence[Sample], max_growth: float = 0.05,
                max_lag_s: float = 30.0, offered_rps: Optional[float] = None,
                min_offered: float = 0.9) -> LagVerdict:
  """Bounded when, over the samples' span, the lag grows by less than max_growth of the
  produced rate (a least-squares slope, so one late counter update does not decide) and
  the lag at the end is under max_lag_s seconds' worth of produced records (a job that
  keeps pace but a minute behind is not keeping up). With offered_rps, also only when the
  load really produced min_offered of it: a rate that was never offered was not sustained
  (the load generator or the broker was the limit, not the job)."""
  if len(samples) < 3:
    raise ValueError('need at least 3 samples to judge the lag')
  first, last = samples[0], samples[-1]
  span = last.t - first.t
  produced_rps = (last.produced - first.produced) / span
  consumed_rps = (last.consumed - first.consumed) / span
  growth = slope([(s.t, s.lag) for s in samples])
  if growth > max_growth * produced_rps:
    bounded, reason = False, (f'lag grows {growth:.0f} records/s '
                              f'(> {max_growth:.0%} of {produced_rps:.0f} produced/s)')
  elif last.lag > max_lag_s * produced_rps:
    bounded, reason = False, (f'lag {last.lag} records is over {max_lag_s:.0f} s of '
                              f'production')
  elif offered_rps and produced_rps < min_offered * offered_rps:
    bounded, reason = False, (f'only {produced_rps:.0f} of {offered_rps:.0f} readings/s '
                              f'offered were produced (load generator or broker limit)')
  else:
    bounded, reason = True, f'lag {first.lag} -> {last.lag}, slope {growth:.0f} records/s'
  return LagVerdict(bounded, round(produced_rps, 1), round(consumed_rps, 1),
                    round(growth, 1), first.lag, last.lag, reason)


def next_rate(trials: Dict[float, bool], start: float, factor: float = 2.0,
              resolution: float = 0.1, ceiling: float = 1e6) -> Optional[float]:
  """The next offered rate to try, given {rate: bounded} so far; None when done.

  Grows from `start` by `factor` while every rate was bounded; after the first unbounded
  rate, bisects (geometric mean) between the highest bounded and the lowest unbounded rate
  until they are within `resolution` (relative) of each other. If `start` itself is
  unbounded, goes down by `factor` until a rate is bounded.
  """
  if not trials:
    return start
  good = [r for r, ok in trials.items() if ok]
  bad = [r for r, ok in trials.items() if not ok]
  if not bad:
    top = max(good) * factor
    return top if top <= ceiling else None
  low_bad = min(bad)
  if not good or max(good) >= low_bad:
    # Nothing bounded below the lowest failure (a noisy run can make a lower rate fail
    # after a higher one passed: trust the failure, search below it).
    below = [r for r in good if r < low_bad]
    if not below:
      candidate = low_bad / factor
      return candidate if candidate >= 1 else None
  high_good = max(r for r in good if r < low_bad)
  if low_bad / high_good <= 1 + resolution:
    return None
  return round(math.sqrt(high_good * low_bad), -1) or None


def max_bounded(trials: Dict[float, bool]) -> Optional[float]:
  """The highest rate that was bounded below every unbounded one."""
  bad = [r for r, ok in trials.items() if not ok]
  ceiling = min(bad) if bad else math.inf
  good = [r for r, ok in trials.items() if ok and r < ceiling]
  return max(good) if good else None


def latency_summary(latencies_ms: List[float]) -> Dict[str, Optional[float]]:
  return {'alerts': len(latencies_ms), 'p50_ms': percentile(latencies_ms, 50),
          'p99_ms': percentile(latencies_ms, 99),
          'max_ms': max(latencies_ms) if latencies_ms else None}


def matched_latencies(alerts: Sequence[Tuple[str, float, int]],
                      sent: Dict[Tuple[str, float], List[int]]) -> List[int]:
  """Latencies (ms) of alerts that name only their reading's sensor and value.

  alerts: (sensor_id, value, alert timestamp ms); sent: {(sensor_id, value): the Kafka
  timestamps of the readings with that value}. An alert belongs to the newest such reading
  sent no later than the alert; a reading alerted several times (the original job judges a
  reading once per window that holds it) counts once, with its first alert. Alerts without
  a reading in `sent` (outside the measured stretch) are left out.
  """
  first: Dict[Tuple[str, float, int], int] = {}
  for sensor, value, alert_ms in alerts:
    earlier = [t for t in sent.get((sensor, value), ()) if t <= alert_ms]
    if earlier:
      reading = (sensor, value, max(earlier))
      first[reading] = min(first.get(reading, alert_ms), alert_ms)
  return sorted(alert_ms - reading[2] for reading, alert_ms in first.items())
