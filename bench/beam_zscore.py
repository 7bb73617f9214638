"""The benchmark's baseline: Beam's own anomaly detection on our readings (issue 6).

  Kafka readings ─ ReadSensorRecords ─ ParseReadings ─ (sensor_id, Row(value, ts_ms))
      ─ AnomalyDetection(ZScore(features=['value'])) ─ outliers ─ JSON ─> alerts topic

The same source, parser and sink as the job (pipeline/kafka_io.py, transforms/parse.py);
only the detector differs: apache_beam.ml.anomaly's ZScore, which keeps per sensor a
running mean and standard deviation of the last 1,000 values (IncSlidingMeanTracker /
IncSlidingStdevTracker) in Beam state and flags |value - mean| / stddev > 3
(FixedThreshold(3)). It scores each reading against the values before it, then learns it.
Dead letters are counted by the parser and dropped; nothing else is written.

Run it like the job (runners/flink_options.flink_args gives the Flink options):

  python -m bench.beam_zscore --runner=FlinkRunner ... --readings_topic=t --alerts_topic=a
  python -m bench.beam_zscore --input_file=readings.jsonl --output_dir=out/   # DirectRunner

An outlier leaves as JSON {"sensor_id", "ts", "value", "score", "threshold", "model_id",
"detected_at"}, keyed by sensor_id, like the job's alerts (so alert latency is measured the
same way: the record's Kafka timestamp minus its `ts`).
"""

import os
import time
from typing import Any, List, Optional, Tuple

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.ml.anomaly.base import AnomalyResult
from apache_beam.ml.anomaly.detectors.zscore import ZScore
from apache_beam.ml.anomaly.transforms import AnomalyDetection
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.runners.runner import PipelineResult

from pipeline.file_io import ReadRawRecordsFromFiles, WriteJsonLines
from pipeline.kafka_io import ReadSensorRecords, WriteToTopic, validate_kafka
from pipeline import main as pipeline_main
from pipeline.main import _io_args
from pipeline.options import InvalidOptionError, event_time_bounds_ms, validate
from transforms.parse import METRICS_NAMESPACE, ParseReadings, RecordParser
from transforms.records import iso_ms

OUTLIER = 1  # apache_beam.ml.anomaly.base.DEFAULT_OUTLIER_LABEL


def to_keyed_row(reading) -> Tuple[str, beam.Row]:
  """A Reading -> (sensor_id, Row(value, ts_ms)); ZScore reads only `value`."""
  return reading.sensor_id, beam.Row(value=reading.value, ts_ms=reading.ts_ms)


class _OutliersToJsonFn(beam.DoFn):
  """(sensor_id, AnomalyResult) -> a JSON-ready dict for each outlier; counts all results."""

  def __init__(self):
    self._scored = Metrics.counter(METRICS_NAMESPACE, 'zscore_readings')
    self._outliers = Metrics.counter(METRICS_NAMESPACE, 'zscore_anomalies')

  def process(self, element: Tuple[str, AnomalyResult]):
    sensor_id, result = element
    self._scored.inc()
    prediction = result.predictions[0]
    if prediction.label == OUTLIER:
      self._outliers.inc()
      yield {
          'sensor_id': sensor_id,
          'ts': iso_ms(result.example.ts_ms),
          'value': result.example.value,
          'score': prediction.score,
          'threshold': prediction.threshold,
          'model_id': prediction.model_id,
          'detected_at': iso_ms(int(time.time() * 1000)),
      }


class DetectWithBeamZScore(beam.PTransform):
  """Readings -> outliers as dicts, by apache_beam.ml.anomaly's ZScore per sensor."""

  def __init__(self, detector: Optional[ZScore] = None):
    super().__init__()
    self._detector = detector or ZScore(features=['value'])

  def expand(self, readings):
    return (
        readings
        # A Tuple type hint is what makes AnomalyDetection treat the input as keyed.
        | 'KeyedRows' >> beam.Map(to_keyed_row).with_output_types(Tuple[str, Any])
        | 'AnomalyDetection' >> AnomalyDetection(self._detector)
        | 'Outliers' >> beam.ParDo(_OutliersToJsonFn()))


def make_pipeline(argv: List[str]) -> beam.Pipeline:
  """The job's source and sink around DetectWithBeamZScore; options as in pipeline.main."""
  io_args, beam_args = _io_args(argv)
  options = PipelineOptions(beam_args)
  opts = validate(options)
  min_ts_ms, max_ts_ms = event_time_bounds_ms(opts)
  parser = RecordParser(opts.input_format, opts.max_record_bytes, min_ts_ms, max_ts_ms)
  if io_args.input_file:
    if not io_args.output_dir:
      raise InvalidOptionError('output_dir', 'is required with --input_file')
    p = beam.Pipeline(options=options)
    records = p | 'ReadRecords' >> ReadRawRecordsFromFiles(io_args.input_file)
  else:
    kafka = validate_kafka(options)
    if kafka.max_num_records is None:
      options.view_as(StandardOptions).streaming = True
    p = beam.Pipeline(options=options)
    records = p | 'ReadSensorRecords' >> ReadSensorRecords(kafka)
  parsed = records | 'ParseReadings' >> ParseReadings(parser)
  outliers = parsed['readings'] | 'BeamZScore' >> DetectWithBeamZScore()
  if io_args.input_file:
    outliers | 'WriteAlerts' >> WriteJsonLines(os.path.join(io_args.output_dir, 'alerts', 'part'))
  else:
    outliers | 'Write_alerts' >> WriteToTopic(kafka, kafka.alerts_topic)
  return p


def run(argv: Optional[List[str]] = None, wait: bool = True) -> PipelineResult:
  """Builds and starts the baseline job; waits for it to end unless wait=False."""
  return pipeline_main.run(argv, wait, make=make_pipeline)


if __name__ == '__main__':
  pipeline_main.main(make=make_pipeline)
