"""JSON encoding of every output, shared by all sinks (files, Kafka, ...)."""

import json
import math
from typing import Any, Dict

from transforms.baseline import SensorWindowStats
from transforms.records import DeadLetter, Reading, iso_ms


def reading_to_json_dict(reading: Reading) -> Dict[str, Any]:
  out = dict(reading.extra or {})
  out.update(sensor_id=reading.sensor_id, value=reading.value, ts=iso_ms(reading.ts_ms))
  return out


def to_json_dict(element) -> Dict[str, Any]:
  if isinstance(element, dict):  # alerts are already dicts
    return element
  if isinstance(element, (SensorWindowStats, DeadLetter)):
    return element.to_json_dict()
  if isinstance(element, Reading):
    return reading_to_json_dict(element)
  raise TypeError(f'no JSON encoding for {type(element).__name__}')


def _finite(value):
  """NaN and infinities become null: they are not JSON, and consumers must not choke."""
  if isinstance(value, float) and not math.isfinite(value):
    return None
  if isinstance(value, dict):
    return {k: _finite(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_finite(v) for v in value]
  return value


def to_json_line(element) -> str:
  # allow_nan=False guards the rule above: NaN/inf would make invalid JSON.
  return json.dumps(_finite(to_json_dict(element)), sort_keys=True, allow_nan=False)


def sensor_key(element) -> bytes:
  """The message key of an output record: its sensor, so one sensor stays in one partition."""
  if isinstance(element, dict):
    return element['sensor_id'].encode('utf-8')
  if isinstance(element, DeadLetter):
    return element.record.key or b''
  return element.sensor_id.encode('utf-8')
