"""`make report`: one PNG per series, to judge whether the default detector's alerts can be trusted.

    python -m backtest.report --data ../shared/nab/data --out .local/nab/report

For every series under --data (`<category>/<name>.csv` or `.parquet`, see
backtest/run.py), `<out>/<category>/<series>.png`:
top, the readings, the value the detector expected and the band between the
lower and upper bounds at its threshold (what an alert reports: a reading
outside the band alerts, unless a hold halves its score), the trailing and
seasonal baselines' means, the alerts (score above the detector's threshold)
and the labelled windows when labels exist; bottom, the score and the
threshold. Needs the `report` extra
(matplotlib).
"""

import argparse
import os
import sys
from datetime import datetime, timezone
from typing import List, Optional

import numpy as np

from backtest.replay import replay_series, window_stats
from backtest.run import (DEFAULT_DETECTOR, DETECTORS, default_labels, detector_config,
                          find_series, load_windows, read_series_file)

def _mean(stats) -> np.ndarray:
  return np.array([s.mean if s else np.nan for s in stats])


def _explained(explanations, key: str) -> np.ndarray:
  return np.array([np.nan if e.get(key) is None else e[key] for e in explanations])


def plot_series(series, detector: str, windows, path: str) -> int:
  """Writes one PNG; returns the number of alerts drawn."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt

  rule, shape = detector_config(DETECTORS[detector])
  ts = np.asarray(series.ts_ms, dtype=np.int64)
  values = np.asarray(series.values)
  release = shape.release_ms(shape.slot_start_ms(ts))
  mean = _mean(window_stats(ts, values, *shape.trailing_range_ms(release)))
  explanations = [] if rule.is_stateful else None
  scores = np.asarray(replay_series(series.ts_ms, series.values, rule, shape, explanations))
  times = [datetime.fromtimestamp(t / 1000, tz=timezone.utc) for t in series.ts_ms]
  alerts = scores > rule.threshold

  fig, (top, bottom) = plt.subplots(2, 1, figsize=(14, 6), sharex=True,
                                    gridspec_kw={'height_ratios': [3, 1]})
  for start, end in windows:
    for ax in (top, bottom):
      ax.axvspan(datetime.fromtimestamp(start / 1000, tz=timezone.utc),
                 datetime.fromtimestamp(end / 1000, tz=timezone.utc),
                 color='tab:orange', alpha=0.15, lw=0)
  top.plot(times, values, color='tab:blue', lw=0.7, label='readings')
  top.plot(times, mean, color='black', lw=0.6, alpha=0.6, label='trailing baseline mean')
  if explanations is not None:
    top.plot(times, _explained(explanations, 'expected'), color='black', lw=0.9,
             label='expected')
    top.fill_between(times, _explained(explanations, 'lower'), _explained(explanations, 'upper'),
                     color='grey', alpha=0.3, lw=0,
                     label=f'lower to upper bound at the threshold {rule.threshold:g}')
  if shape.season_ms:
    seasonal = _mean(window_stats(ts, values, *shape.seasonal_range_ms(release)))
    top.plot(times, seasonal, color='tab:green', lw=0.6, alpha=0.7,
             label='seasonal baseline mean (one season earlier)')
  top.scatter([t for t, a in zip(times, alerts) if a], values[alerts], color='red', s=25,
              zorder=3, label=f'alerts ({int(alerts.sum())})')
  if windows:
    top.plot([], [], color='tab:orange', alpha=0.3, lw=8, label='labelled anomaly window')
  low, high = float(np.min(values)), float(np.max(values))
  pad = 0.25 * (high - low) or 1.0  # a young sensor's bounds are wide: keep the readings in view
  top.set_ylim(low - pad, high + pad)
  top.set_title(f'{series.category}/{series.name}: detector {detector}, {len(values)} readings')
  top.legend(loc='upper left', fontsize=7, ncol=3)
  bottom.plot(times, scores, color='tab:purple', lw=0.7, label='score')
  bottom.axhline(rule.threshold, color='red', lw=0.8, ls='--',
                 label=f'threshold {rule.threshold:g}')
  bottom.set_ylim(0, 1.05)
  bottom.legend(loc='upper left', fontsize=7)
  fig.tight_layout()
  os.makedirs(os.path.dirname(path), exist_ok=True)
  fig.savefig(path, dpi=90)
  plt.close(fig)
  return int(alerts.sum())


def main(argv: Optional[List[str]] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--data', required=True, help='folder of <category>/<name>.csv or .parquet files')
  parser.add_argument('--out', required=True, help='folder for <category>/<series>.png')
  parser.add_argument('--labels', help='combined_windows.json (default: <data>/../labels/...)')
  parser.add_argument('--detector', default=DEFAULT_DETECTOR, choices=list(DETECTORS))
  args = parser.parse_args(argv)
  windows = load_windows(args.labels or default_labels(args.data))
  keys = find_series(args.data)
  for i, key in enumerate(keys, start=1):
    for series in read_series_file(args.data, key):
      name = f'{series.category}/{series.name}'
      path = os.path.join(args.out, name[:-len('.csv')] + '.png')
      n = plot_series(series, args.detector, windows.get(name, ()), path)
      print(f'[{i}/{len(keys)}] {path}: {n} alerts', flush=True)
  return 0


if __name__ == '__main__':
  sys.exit(main())
