"""Helpers to drive build_pipeline with TestStream and read its outputs and counters."""

import json
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_stream import TestStream

from pipeline.build import OUTPUTS, build_pipeline
from transforms.encode import to_json_dict
from transforms.records import RawRecord

Attach = Callable[[Dict[str, beam.PCollection], PipelineOptions], object]

T0 = 1_700_000_000_000  # ms; a multiple of every window size and period used in tests


def json_record(sensor_id, value, t_s: float, **extra) -> RawRecord:
  """A JSON reading at T0 + t_s seconds (the source timestamp equals the event time)."""
  ts_ms = T0 + round(t_s * 1000)
  payload = json.dumps(dict(sensor_id=sensor_id, value=value, ts=ts_ms, **extra))
  return RawRecord(payload.encode('utf-8'), timestamp_ms=ts_ms)


def csv_record(sensor_id, value, t_s: float) -> RawRecord:
  ts_ms = T0 + round(t_s * 1000)
  return RawRecord(f'{sensor_id},{value}'.encode('utf-8'), timestamp_ms=ts_ms)


def at(seconds: float) -> float:
  return (T0 / 1000.0) + seconds


class _Collect(beam.DoFn):
  """Appends JSON dicts of an output to a module-level list (DirectRunner is in-process)."""

  def __init__(self, sink_name):
    self._sink_name = sink_name

  def process(self, element):
    _SINKS[self._sink_name].append(json.loads(json.dumps(to_json_dict(element))))


_SINKS: Dict[str, list] = {}


def run_stream(events: Sequence[Tuple[str, object]], args: List[str] = (),
               attach: Optional[Attach] = None) -> Tuple[Dict[str, list], Dict[str, int]]:
  """events: ('add', [RawRecord]) or ('watermark', seconds after T0).

  Runs build_pipeline in streaming mode on the DirectRunner; returns
  ({output: [json dicts]}, {counter name: value}). Ends at watermark +inf.
  The streaming DirectRunner loses the counters of DoFns that waited for a
  side input (Beam 2.70): use run_batch to check those counters.
  attach(outputs, options), if given, adds more sinks (e.g. the archive).
  """
  stream = TestStream()
  for kind, payload in events:
    if kind == 'add':
      stream = stream.add_elements([
          beam.window.TimestampedValue(r, (r.timestamp_ms or T0) / 1000.0) for r in payload])
    elif kind == 'watermark':
      stream = stream.advance_watermark_to(at(payload))
    else:
      raise ValueError(kind)
  stream = stream.advance_watermark_to_infinity()

  return _run(lambda p: p | stream, args, streaming=True, attach=attach)


def run_batch(records: Sequence[RawRecord], args: List[str] = ()):
  """Same as run_stream for a bounded input (watermark at +inf once all is read)."""
  def source(p):
    return (p | beam.Create(list(records))
            | beam.Map(lambda r: beam.window.TimestampedValue(r, (r.timestamp_ms or T0) / 1000.0)))
  return _run(source, args, streaming=False)


def _run(source, args, streaming, attach=None):
  options = PipelineOptions(list(args))
  options.view_as(StandardOptions).streaming = streaming
  prefix = f'run{len(_SINKS)}'
  for name in OUTPUTS:
    _SINKS[f'{prefix}_{name}'] = []
  p = beam.Pipeline(options=options)
  outputs = build_pipeline(source(p), options)
  if attach:
    attach(outputs, options)
  for name in OUTPUTS:
    _ = outputs[name] | f'Collect_{name}' >> beam.ParDo(_Collect(f'{prefix}_{name}'))
  result = p.run()
  result.wait_until_finish()
  counters = {
      c.key.metric.name: c.committed
      for c in result.metrics().query(MetricsFilter())['counters']}
  return {name: _SINKS.pop(f'{prefix}_{name}') for name in OUTPUTS}, counters


def project(records: List[dict], *fields: str) -> List[tuple]:
  return sorted(tuple(r[f] for f in fields) for r in records)
