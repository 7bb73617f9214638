"""build_pipeline: raw records in, every output of the job out. No sources, no sinks."""

from typing import Any, Callable, Dict, Iterable, Optional

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.options import baseline_lag_s, event_time_bounds_ms, sensor_ttl_s, validate
from transforms.baseline import BaselineShape
from transforms.detect import DetectAnomalies
from transforms.parse import ParseReadings, RecordParser
from transforms.records import RawRecord
from transforms.rules import Rule

OUTPUTS = ('alerts', 'window_stats', 'dead_letters', 'late')


def make_rule(options: PipelineOptions) -> Rule:
  opts = validate(options)
  return Rule(opts.rule, opts.threshold, opts.min_count, opts.min_stddev,
              opts.score_half_life, opts.alert_hold, sensor_ttl_s(opts))


def make_shape(options: PipelineOptions) -> BaselineShape:
  """Which windows judge a slot, from the options (milliseconds)."""
  opts = validate(options)
  return BaselineShape(round(opts.window_size * 1000), round(opts.window_period * 1000),
                       opts.baseline, opts.trailing_windows, round(opts.season * 1000),
                       round(baseline_lag_s(opts) * 1000))


def build_pipeline(records: beam.PCollection, options: PipelineOptions,
                   unpack: Optional[Callable[[Any], Iterable[RawRecord]]] = None
                   ) -> Dict[str, beam.PCollection]:
  """RawRecords -> {'alerts': dicts, 'window_stats': SensorWindowStats,
  'dead_letters': DeadLetters, 'late': Readings}. With `unpack`, an element of `records` is
  a group of records and unpack(element) its RawRecords (Kafka record blocks)."""
  opts = validate(options)
  min_ts_ms, max_ts_ms = event_time_bounds_ms(opts)
  parser = RecordParser(opts.input_format, opts.max_record_bytes, min_ts_ms, max_ts_ms,
                        max_future_ms=int(opts.max_clock_skew * 1000))
  # As late as the windows accept (allowed lateness + one period, see DetectAnomalies).
  parsed = records | 'ParseReadings' >> ParseReadings(
      parser, max_delay_ms=round((opts.allowed_lateness + opts.window_period) * 1000),
      unpack=unpack, batched=True)
  detected = parsed['readings'] | 'DetectAnomalies' >> DetectAnomalies(
      make_rule(opts), make_shape(opts), opts.allowed_lateness, opts.score_order)
  return {
      'alerts': detected['alerts'],
      'window_stats': detected['window_stats'],
      'dead_letters': parsed['dead_letters'],
      'late': (parsed['late'], detected['late']) | 'AllLate' >> beam.Flatten(),
  }
