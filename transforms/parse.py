"""Turns raw bytes into Readings, and everything unusable into DeadLetters.

Two formats: a JSON object `{"sensor_id": ..., "value": ..., "ts": ...}` and the
original job's CSV line `sensor_id,value` (event time = source timestamp).
Nothing raises: every failure becomes a DeadLetter with a machine-readable
reason, counted per reason by ParseReadings.
"""

import json
import math
from datetime import datetime
from typing import Any, Callable, Iterable, Optional, Tuple, Union

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import TimestampedValue

from transforms.batch import ReadingBatch, ShardBatcher
from transforms.records import DeadLetter, RawRecord, Reading

METRICS_NAMESPACE = 'anomaly'

RECORD_TOO_LARGE = 'record_too_large'
INVALID_UTF8 = 'invalid_utf8'
MALFORMED_JSON = 'malformed_json'
NOT_AN_OBJECT = 'not_an_object'
MALFORMED_CSV = 'malformed_csv'
MISSING_FIELD = 'missing_field'
EMPTY_FIELD = 'empty_field'
WRONG_TYPE = 'wrong_type'
NON_NUMERIC_VALUE = 'non_numeric_value'
NON_FINITE_VALUE = 'non_finite_value'
BAD_TIMESTAMP = 'bad_timestamp'
TIMESTAMP_OUT_OF_RANGE = 'timestamp_out_of_range'
TIMESTAMP_IN_FUTURE = 'timestamp_in_future'

DEAD_LETTER_REASONS = (
    RECORD_TOO_LARGE, INVALID_UTF8, MALFORMED_JSON, NOT_AN_OBJECT,
    MALFORMED_CSV, MISSING_FIELD, EMPTY_FIELD, WRONG_TYPE, NON_NUMERIC_VALUE,
    NON_FINITE_VALUE, BAD_TIMESTAMP, TIMESTAMP_OUT_OF_RANGE, TIMESTAMP_IN_FUTURE)

INPUT_FORMATS = ('auto', 'json', 'csv')


class ParseError(Exception):
  """A permanent problem with one record; carries its dead-letter reason."""

  def __init__(self, reason: str, detail: str):
    super().__init__(f'{reason}: {detail}')
    self.reason = reason
    self.detail = detail


class RecordParser:
  """Validates one record. Pure and picklable, so it is tested directly."""

  def __init__(
      self,
      input_format: str = 'auto',
      max_record_bytes: int = 65536,
      min_ts_ms: int = 946684800000,  # 2000-01-01T00:00:00Z
      max_ts_ms: int = 4102444800000,  # 2100-01-01T00:00:00Z
      max_future_ms: Optional[int] = None):
    """max_future_ms: how far a reading's event time may be ahead of its record's source
    timestamp (a sensor clock gone wrong). A reading from far in the future would sit in
    window state until the watermark reaches it, for years."""
    if input_format not in INPUT_FORMATS:
      raise ValueError(f'input_format must be one of {INPUT_FORMATS}')
    self.input_format = input_format
    self.max_record_bytes = max_record_bytes
    self.min_ts_ms = min_ts_ms
    self.max_ts_ms = max_ts_ms
    self.max_future_ms = max_future_ms

  def parse(self, record: RawRecord) -> Union[Reading, DeadLetter]:
    try:
      return self._parse(record)
    except ParseError as error:
      return DeadLetter(error.reason, error.detail, record)

  def _parse(self, record: RawRecord) -> Reading:
    payload = record.payload
    if len(payload) > self.max_record_bytes:
      raise ParseError(
          RECORD_TOO_LARGE,
          f'{len(payload)} bytes > max_record_bytes={self.max_record_bytes}')
    try:
      text = payload.decode('utf-8')
    except UnicodeDecodeError as error:
      raise ParseError(INVALID_UTF8, str(error)) from None
    fmt = self.input_format
    if fmt == 'auto':
      fmt = 'json' if text.lstrip().startswith('{') else 'csv'
    if fmt == 'json':
      reading = self._parse_json(text)
    else:
      reading = self._parse_csv(text, record.timestamp_ms)
    if (self.max_future_ms is not None and record.timestamp_ms is not None
        and reading.ts_ms > record.timestamp_ms + self.max_future_ms):
      raise ParseError(TIMESTAMP_IN_FUTURE,
                       f'ts={reading.ts_ms} ms is {reading.ts_ms - record.timestamp_ms} ms '
                       f'after the record\'s timestamp {record.timestamp_ms} ms')
    return reading

  def _parse_json(self, text: str) -> Reading:
    try:
      obj = json.loads(text)
    except (ValueError, RecursionError) as error:
      raise ParseError(MALFORMED_JSON, str(error)[:200]) from None
    if not isinstance(obj, dict):
      raise ParseError(NOT_AN_OBJECT, f'got {type(obj).__name__}')
    for field in ('sensor_id', 'value', 'ts'):
      if field not in obj or obj[field] is None:
        raise ParseError(MISSING_FIELD, field)
    sensor_id = self._sensor_id(obj['sensor_id'])
    value = self._value(obj['value'])
    ts_ms = self._timestamp(obj['ts'])
    extra = {k: v for k, v in obj.items() if k not in ('sensor_id', 'value', 'ts')}
    return Reading(sensor_id, value, ts_ms, extra or None)

  def _parse_csv(self, text: str, source_ts_ms) -> Reading:
    fields = text.strip().split(',')
    if len(fields) != 2:
      raise ParseError(
          MALFORMED_CSV, f'expected "sensor_id,value", got {len(fields)} fields')
    sensor_id = self._sensor_id(fields[0].strip())
    raw_value = fields[1].strip()
    if not raw_value:
      raise ParseError(EMPTY_FIELD, 'value')
    try:
      value = float(raw_value)
    except ValueError:
      raise ParseError(NON_NUMERIC_VALUE, repr(raw_value[:50])) from None
    if not math.isfinite(value):
      raise ParseError(NON_FINITE_VALUE, raw_value[:50])
    if source_ts_ms is None:
      raise ParseError(BAD_TIMESTAMP, 'CSV record without a source timestamp')
    return Reading(sensor_id, value, self._in_range(int(source_ts_ms)))

  @staticmethod
  def _sensor_id(raw: Any) -> str:
    if not isinstance(raw, str):
      raise ParseError(WRONG_TYPE, f'sensor_id is {type(raw).__name__}, not a string')
    if not raw.strip():
      raise ParseError(EMPTY_FIELD, 'sensor_id')
    return raw

  @staticmethod
  def _value(raw: Any) -> float:
    # bool is an int in Python, but true/false is not a measurement.
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
      raise ParseError(NON_NUMERIC_VALUE, f'value is {type(raw).__name__}')
    value = float(raw)  # a huge JSON integer becomes inf here
    if not math.isfinite(value):
      raise ParseError(NON_FINITE_VALUE, repr(raw)[:50])
    return value

  def _timestamp(self, raw: Any) -> int:
    if isinstance(raw, bool):
      raise ParseError(BAD_TIMESTAMP, 'ts is a boolean')
    if isinstance(raw, (int, float)):
      if not math.isfinite(raw):
        raise ParseError(BAD_TIMESTAMP, f'ts={raw!r}')
      return self._in_range(int(raw))
    if isinstance(raw, str):
      try:
        moment = datetime.fromisoformat(raw)
      except ValueError:
        raise ParseError(BAD_TIMESTAMP, f'not ISO-8601: {raw[:50]!r}') from None
      if moment.tzinfo is None:
        raise ParseError(BAD_TIMESTAMP, f'ISO-8601 without a zone: {raw[:50]!r}')
      try:
        ts_ms = round(moment.timestamp() * 1000)
      except (OverflowError, OSError, ValueError):
        raise ParseError(TIMESTAMP_OUT_OF_RANGE, raw[:50]) from None
      return self._in_range(ts_ms)
    raise ParseError(BAD_TIMESTAMP, f'ts is {type(raw).__name__}')

  def _in_range(self, ts_ms: int) -> int:
    if not self.min_ts_ms <= ts_ms < self.max_ts_ms:
      raise ParseError(TIMESTAMP_OUT_OF_RANGE, f'ts={ts_ms} ms')
    return ts_ms


class _ParseFn(beam.DoFn):
  """Emits Readings on the main output, DeadLetters on 'dead_letters', and readings that
  reached the source more than max_delay_ms after their event time on 'late'.

  The readings leave timestamped at their event time, or, batched, as one (shard,
  ReadingBatch) per shard and bundle (transforms/batch.ShardBatcher). With `unpack`, an
  element is a group of records (a Kafka record block) and unpack(element) yields its
  RawRecords; a dead letter or late reading is then stamped with its own record's source
  timestamp, as if each record had been an element.
  """

  def __init__(self, parser: RecordParser, max_delay_ms: Optional[int] = None,
               unpack: Optional[Callable[[Any], Iterable[RawRecord]]] = None,
               batched: bool = False):
    self._parser = parser
    self._max_delay_ms = max_delay_ms
    self._unpack = unpack
    self._batched = batched
    self._readings = Metrics.counter(METRICS_NAMESPACE, 'readings')
    self._late = Metrics.counter(METRICS_NAMESPACE, 'late_readings')
    self._dead = {
        reason: Metrics.counter(METRICS_NAMESPACE, f'dead_letter_{reason}')
        for reason in DEAD_LETTER_REASONS
    }
    self._dead_total = Metrics.counter(METRICS_NAMESPACE, 'dead_letters')
    self._batcher = None

  def start_bundle(self):
    self._batcher = ShardBatcher() if self._batched else None

  def process(self, element, win=beam.DoFn.WindowParam):
    records = (element,) if self._unpack is None else self._unpack(element)
    readings = 0
    for record in records:
      result = self._parser.parse(record)
      if isinstance(result, DeadLetter):
        self._dead[result.reason].inc()
        self._dead_total.inc()
        yield beam.pvalue.TaggedOutput(ParseReadings.DEAD_LETTERS, self._stamped(result, record))
        continue
      readings += 1
      source_ms = record.timestamp_ms
      if (self._max_delay_ms is not None and source_ms is not None
          and result.ts_ms < source_ms - self._max_delay_ms):
        self._late.inc()
        yield beam.pvalue.TaggedOutput(ParseReadings.LATE, self._stamped(result, record))
      elif self._batcher is not None:
        self._batcher.add(result, win)
      else:
        yield TimestampedValue(result, result.ts_ms / 1000.0)
    if readings:
      self._readings.inc(readings)

  def finish_bundle(self):
    if self._batcher is not None:
      yield from self._batcher.flush()

  def _stamped(self, value, record: RawRecord):
    if self._unpack is None or record.timestamp_ms is None:
      return value  # the element's own timestamp is the record's
    return TimestampedValue(value, record.timestamp_ms / 1000.0)


class ParseReadings(beam.PTransform):
  """RawRecords -> {'readings': Readings at event time, 'dead_letters': DeadLetters,
  'late': Readings that arrived too late}.

  batched: 'readings' holds (shard, ReadingBatch) pairs instead, one per shard and bundle
  (what DetectAnomalies takes). unpack: the elements are groups of records, unpack(element)
  their RawRecords (pipeline/kafka_io.py's record blocks): parsing them where they arrive
  spares each record its own trip through Beam's per-element machinery.

  max_delay_ms: a reading whose record reached the source (its Kafka timestamp) more than
  this after the reading's event time is late at once: the watermark follows the source
  timestamps, so it is behind the watermark by about as much. Routing it here keeps
  readings from long ago (a sensor clock reset, a replayed archive) out of the windows and
  the side input, where each would open a window of its own long after it closed; on Flink
  such readings stalled the side input (seen with fuzzed timestamps).
  """
  READINGS = 'readings'
  DEAD_LETTERS = 'dead_letters'
  LATE = 'late'

  def __init__(self, parser: RecordParser, max_delay_ms: Optional[int] = None,
               unpack: Optional[Callable[[Any], Iterable[RawRecord]]] = None,
               batched: bool = False):
    super().__init__()
    self._parser = parser
    self._max_delay_ms = max_delay_ms
    self._unpack = unpack
    self._batched = batched

  def expand(self, records):
    parse = beam.ParDo(_ParseFn(self._parser, self._max_delay_ms, self._unpack, self._batched))
    if self._batched:
      parse = parse.with_output_types(Tuple[int, ReadingBatch])
    results = records | 'Parse' >> parse.with_outputs(
        self.DEAD_LETTERS, self.LATE, main=self.READINGS)
    return {self.READINGS: results[self.READINGS],
            self.DEAD_LETTERS: results[self.DEAD_LETTERS],
            self.LATE: results[self.LATE]}


def parse_epoch_or_iso_ms(text: str) -> int:
  """Option helper: epoch milliseconds or ISO-8601 with zone -> epoch ms."""
  if text.lstrip('-').isdigit():
    return int(text)
  moment = datetime.fromisoformat(text)
  if moment.tzinfo is None:
    raise ValueError(f'{text!r} has no zone')
  return round(moment.timestamp() * 1000)

