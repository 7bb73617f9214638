"""bench/beam_zscore.py, the benchmark's baseline (Beam's ZScore), on the DirectRunner."""

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that

from bench.beam_zscore import DetectWithBeamZScore
from tests.streaming import T0, at
from transforms.records import Reading


def test_beam_zscore_flags_a_spike_and_not_the_noise():
  # 20 readings alternating 10.0 / 10.2 (mean 10.1, stddev ~0.1), then a spike at 50:
  # z = |50 - 10.1| / 0.1 ~ 390 > 3. The normal readings come first (their own watermark
  # step), because ZScore scores each reading against the ones it has learnt before it.
  normal = [Reading('s', 10.0 + 0.2 * (k % 2), T0 + 1000 * k) for k in range(20)]
  spike = Reading('s', 50.0, T0 + 20_000)
  stream = (TestStream()
            .add_elements([beam.window.TimestampedValue(r, at(k)) for k, r in enumerate(normal)])
            .advance_watermark_to(at(20))
            .add_elements([beam.window.TimestampedValue(spike, at(20))])
            .advance_watermark_to_infinity())
  options = PipelineOptions()
  options.view_as(StandardOptions).streaming = True

  def check(outliers):
    assert [(o['sensor_id'], o['value'], o['threshold']) for o in outliers] == [('s', 50.0, 3)]
    assert outliers[0]['score'] > 100

  with beam.Pipeline(options=options) as p:
    outliers = p | stream | DetectWithBeamZScore()
    assert_that(outliers, check)
