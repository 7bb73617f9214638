"""AnomalyOptions: every option of the job, typed, defaulted, with its unit.

`validate(options)` checks combinations before anything is built and raises
InvalidOptionError naming the offending option.
"""

import math

from apache_beam.options.pipeline_options import PipelineOptions

from transforms.baseline import BASELINES, TRAILING
from transforms.judge import ARRIVAL_ORDER, SCORE_ORDERS
from transforms.parse import INPUT_FORMATS, parse_epoch_or_iso_ms
from transforms.rules import DEFAULT_THRESHOLDS, LIKELIHOOD, RULES


# The trailing baseline's default --baseline_lag (seconds): longer than a window's statistics
# take to reach the judging step at 5,000 readings/s on the cluster (~3 s after the window
# end, median, for the first readings of a slot), so readings rarely wait for them.
DEFAULT_TRAILING_LAG_S = 3.0


def baseline_lag_s(opts) -> float:
  """The lag in force: --baseline_lag, or its default for the --baseline chosen."""
  if opts.baseline_lag is not None:
    return opts.baseline_lag
  return DEFAULT_TRAILING_LAG_S if opts.baseline == TRAILING else 0.0


# The shortest default --sensor_ttl (seconds): a plant shut down for a fortnight keeps its
# sensors' history (docs/state.md).
MIN_DEFAULT_SENSOR_TTL_S = 14 * 86400.0


def longest_history_s(opts) -> float:
  """The longest stretch of a sensor's past that the detector reads (seconds): its trailing
  windows, its seasonal window, the scorer's half-life and alert hold."""
  trailing = opts.trailing_windows * opts.window_size
  seasonal = opts.season + opts.window_size if opts.season else 0.0
  return max(trailing, seasonal, opts.score_half_life, opts.alert_hold)


def sensor_ttl_s(opts) -> float:
  """The --sensor_ttl in force: the option, or twice the longest history, at least
  MIN_DEFAULT_SENSOR_TTL_S."""
  if opts.sensor_ttl is not None:
    return opts.sensor_ttl
  return max(MIN_DEFAULT_SENSOR_TTL_S, 2 * longest_history_s(opts))


class InvalidOptionError(ValueError):
  """A bad option value or combination; the message starts with the option name."""

  def __init__(self, option: str, problem: str):
    super().__init__(f'--{option}: {problem}')
    self.option = option


class AnomalyOptions(PipelineOptions):

  @classmethod
  def _add_argparse_args(cls, parser):
    group = parser.add_argument_group('anomaly detection')
    group.add_argument(
        '--input_format', choices=INPUT_FORMATS, default='auto',
        help='Record format: json, csv ("sensor_id,value", event time = source '
        'timestamp) or auto (json when the record starts with "{"). Default: auto.')
    group.add_argument(
        '--max_record_bytes', type=int, default=65536,
        help='Records larger than this many bytes go to the dead letters. '
        'Default: 65536 bytes.')
    group.add_argument(
        '--min_event_time', type=str, default='2000-01-01T00:00:00Z',
        help='Earliest accepted event time, ISO-8601 with zone or epoch ms; '
        'older readings are dead letters (timestamp_out_of_range). '
        'Default: 2000-01-01T00:00:00Z.')
    group.add_argument(
        '--max_event_time', type=str, default='2100-01-01T00:00:00Z',
        help='Event times at or after this are dead letters '
        '(timestamp_out_of_range). Default: 2100-01-01T00:00:00Z.')
    group.add_argument(
        '--max_clock_skew', type=float, default=3600.0,
        help='Seconds a reading\'s event time may be ahead of its record\'s source '
        '(Kafka) timestamp; readings further in the future are dead letters '
        '(timestamp_in_future). Default: 3600.')
    group.add_argument(
        '--window_size', type=float, default=10.0,
        help='Length of the sliding statistics windows, in seconds. Default: 10.')
    group.add_argument(
        '--window_period', type=float, default=5.0,
        help='Seconds between the starts of consecutive sliding windows; also '
        'the slot length readings are judged in. Must divide window_size. '
        'Default: 5.')
    group.add_argument(
        '--allowed_lateness', type=float, default=30.0,
        help='Seconds a reading may be behind the watermark and still be '
        'judged and counted in the statistics; later readings go to the late '
        'output, as do readings whose source (Kafka) timestamp is more than this '
        'plus --window_period after their event time. Default: 30.')
    group.add_argument(
        '--baseline', choices=BASELINES, default='trailing',
        help='Which window judges a reading: trailing (the window that ended '
        'at the start of the reading\'s slot, excluding the reading) or '
        'containing (the window ending at the end of its slot, including it, '
        'as the original job). Default: trailing.')
    group.add_argument(
        '--baseline_lag', type=float, default=None,
        help='Seconds by which the baseline is older than the readings it '
        'judges: a reading is judged by the newest window that ended at least '
        'this long before it (trailing baseline; with containing, the window '
        'ending that long before its slot ends). With 0 the first readings '
        'after each window end wait until that window has been computed (~3 s '
        'here) and hold back the alerts of all others meanwhile; a lag longer '
        'than that lets readings be judged as they come, for a baseline one '
        'period older during the first seconds after each window end. Less '
        'than window_period shifts the slots, not the windows. Default: '
        f'{DEFAULT_TRAILING_LAG_S:g} with the trailing baseline, 0 with '
        'containing (the original job\'s numbers).')
    group.add_argument(
        '--rule', choices=RULES, default=LIKELIHOOD,
        help='likelihood: a score in [0, 1], the tail probability of the '
        'deviation from the trailing (and seasonal) baselines among the '
        'sensor\'s own recent deviations, -log10(P) / 5 (see docs/detection.md); '
        'absolute: |value - mean| > threshold '
        '(the original job, with --threshold=50); relative: |value - mean| > '
        'threshold * |mean|; zscore: |value - mean| / stddev > threshold. '
        'Default: likelihood.')
    group.add_argument(
        '--threshold', type=float, default=None,
        help='Threshold of the rule: a score in [0, 1) for likelihood (0.5: a '
        'deviation this rare once in about 300 readings), value '
        'units for absolute, a fraction of the mean for relative, standard '
        'deviations for zscore. Default: ' + ', '.join(
            f'{v:g} ({k})' for k, v in DEFAULT_THRESHOLDS.items()) + '.')
    group.add_argument(
        '--trailing_windows', type=int, default=1,
        help='How many consecutive windows (each window_size long, ending at '
        'the judged slot) make the trailing baseline, merged; more gives a '
        'longer memory from the same statistics. Default: 1.')
    group.add_argument(
        '--season', type=float, default=0.0,
        help='Seconds of a recurring pattern (86400 for daily). When set, a '
        'reading is also judged against the window centred on the same time '
        'one season earlier, and (likelihood) is far only when far from '
        'both baselines, or very far from the seasonal one alone. Must be a multiple of window_period and at least '
        'window_size. Default: 0 (off).')
    group.add_argument(
        '--score_half_life', type=float, default=3600.0,
        help='likelihood: half-life, in seconds of event time, of the '
        'per-sensor histogram of deviations that a deviation is compared '
        'with. Default: 3600.')
    group.add_argument(
        '--score_order', choices=SCORE_ORDERS, default=ARRIVAL_ORDER,
        help='likelihood: in which order a sensor\'s readings are scored. arrival: as '
        'they come, at once (the same scores as event_time when each sensor\'s '
        'readings arrive in order, as from one Kafka partition); event_time: sorted by '
        'event time, each waiting until the watermark passes it (exact for any '
        'delivery order, about a second more alert latency on Flink). Default: arrival.')
    group.add_argument(
        '--alert_hold', type=float, default=60.0,
        help='likelihood: seconds after a high score during which scores not '
        'above it are halved, so one incident raises one alert. Default: 60.')
    group.add_argument(
        '--sensor_ttl', type=float, default=None,
        help='likelihood: seconds of event time after which a sensor that has '
        'sent nothing is forgotten: its per-sensor scorer state is dropped and '
        'counted (expired_sensors); if it reports again it starts afresh. '
        'Default: twice the longest history the detector reads (trailing '
        'windows, season, --score_half_life, --alert_hold), at least 1209600 '
        '(14 days).')
    group.add_argument(
        '--min_count', type=int, default=1,
        help='A baseline with fewer readings than this never alerts. Default: 1.')
    group.add_argument(
        '--min_stddev', type=float, default=1e-6,
        help='Floor of the baseline standard deviation for zscore, in value '
        'units, so a flat baseline does not divide by zero. Default: 1e-6.')


def event_time_bounds_ms(options: AnomalyOptions):
  bounds = []
  for name in ('min_event_time', 'max_event_time'):
    try:
      bounds.append(parse_epoch_or_iso_ms(getattr(options, name)))
    except ValueError as error:
      raise InvalidOptionError(name, f'not epoch ms or ISO-8601 with zone: {error}') from None
  if bounds[0] >= bounds[1]:
    raise InvalidOptionError('max_event_time', 'must be after --min_event_time')
  return tuple(bounds)


def _positive(options, name):
  value = getattr(options, name)
  if not (math.isfinite(value) and value > 0):
    raise InvalidOptionError(name, f'must be a positive number of seconds, got {value}')


def validate(options: PipelineOptions) -> AnomalyOptions:
  """Returns the AnomalyOptions view, or raises InvalidOptionError naming the option."""
  opts = options.view_as(AnomalyOptions)
  _positive(opts, 'window_size')
  _positive(opts, 'window_period')
  _positive(opts, 'max_clock_skew')
  size_ms, period_ms = round(opts.window_size * 1000), round(opts.window_period * 1000)
  if period_ms > size_ms:
    raise InvalidOptionError('window_period', 'must not exceed --window_size')
  if size_ms % period_ms:
    raise InvalidOptionError(
        'window_period', f'must divide --window_size ({opts.window_size} s) exactly')
  if not (math.isfinite(opts.allowed_lateness) and opts.allowed_lateness >= 0):
    raise InvalidOptionError('allowed_lateness', 'must be a number of seconds >= 0')
  if opts.threshold is not None and not (math.isfinite(opts.threshold) and opts.threshold >= 0):
    raise InvalidOptionError('threshold', 'must be a finite number >= 0')
  if opts.rule == LIKELIHOOD and opts.threshold is not None and opts.threshold >= 1:
    raise InvalidOptionError(
        'threshold', f'must be < 1 for --rule={LIKELIHOOD}: its scores are at most 1, '
        f'0.5 means a deviation this rare once in about 300 readings (got {opts.threshold:g})')
  if opts.trailing_windows < 1:
    raise InvalidOptionError('trailing_windows', 'must be >= 1')
  season_ms = round(opts.season * 1000)
  if not (math.isfinite(opts.season) and opts.season >= 0):
    raise InvalidOptionError('season', 'must be a number of seconds >= 0')
  if season_ms and (season_ms % period_ms or season_ms < size_ms):
    raise InvalidOptionError(
        'season', 'must be a multiple of --window_period and at least --window_size')
  if opts.baseline_lag is not None and not (
      math.isfinite(opts.baseline_lag) and opts.baseline_lag >= 0):
    raise InvalidOptionError('baseline_lag', 'must be a number of seconds >= 0')
  _positive(opts, 'score_half_life')
  if not (math.isfinite(opts.alert_hold) and opts.alert_hold >= 0):
    raise InvalidOptionError('alert_hold', 'must be a number of seconds >= 0')
  if opts.sensor_ttl is not None:
    _positive(opts, 'sensor_ttl')
  if opts.min_count < 1:
    raise InvalidOptionError('min_count', 'must be >= 1')
  if not (math.isfinite(opts.min_stddev) and opts.min_stddev > 0):
    raise InvalidOptionError('min_stddev', 'must be > 0')
  if opts.max_record_bytes < 1:
    raise InvalidOptionError('max_record_bytes', 'must be >= 1')
  event_time_bounds_ms(opts)
  return opts
