"""RecordParser: every dead-letter reason, both formats, and the counting DoFn."""

import math

import pytest

from transforms import parse
from transforms.records import DeadLetter, RawRecord, Reading

T = 1_700_000_000_000


def parse_bytes(payload: bytes, fmt='auto', source_ts=T, **kwargs):
  return parse.RecordParser(fmt, **kwargs).parse(RawRecord(payload, timestamp_ms=source_ts))


def reason(payload: bytes, **kwargs):
  result = parse_bytes(payload, **kwargs)
  assert isinstance(result, DeadLetter), result
  assert result.record.payload == payload  # the original bytes travel with it
  return result.reason


def test_json_reading_keeps_extra_fields():
  r = parse_bytes(b'{"sensor_id": "s1", "value": 12.5, "ts": 1700000000123, "unit": "C"}')
  assert r == Reading('s1', 12.5, 1700000000123, {'unit': 'C'})


def test_json_iso_timestamp_with_zone():
  r = parse_bytes(b'{"sensor_id": "s1", "value": 3, "ts": "2023-11-14T22:13:20.500+00:00"}')
  # 2023-11-14T22:13:20Z is 1700000000 s since the epoch; .500 adds 500 ms
  assert r.ts_ms == 1700000000500
  assert r.value == 3.0 and isinstance(r.value, float)
  r = parse_bytes(b'{"sensor_id": "s1", "value": 3, "ts": "2023-11-14T23:13:20+01:00"}')
  assert r.ts_ms == 1700000000000


def test_csv_uses_the_source_timestamp():
  assert parse_bytes(b'pump-7,42.5\n') == Reading('pump-7', 42.5, T)
  assert parse_bytes(b'pump-7,42.5', fmt='csv') == Reading('pump-7', 42.5, T)


def test_auto_detects_json_by_leading_brace_only():
  assert reason(b'{"sensor_id": "a"', fmt='auto') == parse.MALFORMED_JSON
  assert reason(b'[1]', fmt='auto') == parse.MALFORMED_CSV  # not "{": treated as CSV
  assert reason(b'[1, 2]', fmt='json') == parse.NOT_AN_OBJECT
  assert reason(b'{"sensor_id": "a", "value": 1, "ts": 1700000000000}', fmt='csv') == parse.MALFORMED_CSV


@pytest.mark.parametrize('payload, expected', [
    (b'\xff\xfe{"sensor_id"', parse.INVALID_UTF8),
    (b'{"sensor_id": "a", "value": 1,', parse.MALFORMED_JSON),
    (b'{"sensor_id": "a", "value": NaN, "ts": 1700000000000}', parse.NON_FINITE_VALUE),
    (b'{"sensor_id": "a", "value": Infinity, "ts": 1700000000000}', parse.NON_FINITE_VALUE),
    (b'{"sensor_id": "a", "value": 1e999, "ts": 1700000000000}', parse.NON_FINITE_VALUE),
    (b'{"value": 1, "ts": 1700000000000}', parse.MISSING_FIELD),
    (b'{"sensor_id": "a", "ts": 1700000000000}', parse.MISSING_FIELD),
    (b'{"sensor_id": "a", "value": 1}', parse.MISSING_FIELD),
    (b'{"sensor_id": null, "value": 1, "ts": 1700000000000}', parse.MISSING_FIELD),
    (b'{"sensor_id": "", "value": 1, "ts": 1700000000000}', parse.EMPTY_FIELD),
    (b'{"sensor_id": "  ", "value": 1, "ts": 1700000000000}', parse.EMPTY_FIELD),
    (b'{"sensor_id": 17, "value": 1, "ts": 1700000000000}', parse.WRONG_TYPE),
    (b'{"sensor_id": "a", "value": "12", "ts": 1700000000000}', parse.NON_NUMERIC_VALUE),
    (b'{"sensor_id": "a", "value": true, "ts": 1700000000000}', parse.NON_NUMERIC_VALUE),
    (b'{"sensor_id": "a", "value": [1], "ts": 1700000000000}', parse.NON_NUMERIC_VALUE),
    (b'{"sensor_id": "a", "value": 1, "ts": "yesterday"}', parse.BAD_TIMESTAMP),
    (b'{"sensor_id": "a", "value": 1, "ts": "2023-11-14T22:13:20"}', parse.BAD_TIMESTAMP),
    (b'{"sensor_id": "a", "value": 1, "ts": true}', parse.BAD_TIMESTAMP),
    (b'{"sensor_id": "a", "value": 1, "ts": {"ms": 1}}', parse.BAD_TIMESTAMP),
    (b'{"sensor_id": "a", "value": 1, "ts": 5}', parse.TIMESTAMP_OUT_OF_RANGE),
    (b'{"sensor_id": "a", "value": 1, "ts": 99999999999999999}', parse.TIMESTAMP_OUT_OF_RANGE),
    (b'{"sensor_id": "a", "value": 1, "ts": "1999-12-31T23:59:59Z"}', parse.TIMESTAMP_OUT_OF_RANGE),
    (b'{"sensor_id": "a", "value": 1, "ts": "9999-12-31T23:59:59+00:00"}', parse.TIMESTAMP_OUT_OF_RANGE),
    (b'a,b,c', parse.MALFORMED_CSV),
    (b'', parse.MALFORMED_CSV),
    (b',5', parse.EMPTY_FIELD),
    (b'a,', parse.EMPTY_FIELD),
    (b'a,twelve', parse.NON_NUMERIC_VALUE),
    (b'a,nan', parse.NON_FINITE_VALUE),
    (b'a,-inf', parse.NON_FINITE_VALUE),
])
def test_dead_letter_reasons(payload, expected):
  assert reason(payload) == expected


def test_deep_nesting_is_malformed_json_not_a_crash():
  deep = b'{"a":' * 100000 + b'1' + b'}' * 100000
  assert reason(deep, max_record_bytes=len(deep)) == parse.MALFORMED_JSON


def test_event_time_far_ahead_of_the_source_timestamp_is_a_dead_letter():
  # The record was written at T; its reading claims T + 1 h + 1 ms, one ms beyond the skew.
  ahead = b'{"sensor_id": "a", "value": 1, "ts": %d}' % (T + 3_600_001)
  assert reason(ahead, source_ts=T, max_future_ms=3_600_000) == parse.TIMESTAMP_IN_FUTURE
  within = b'{"sensor_id": "a", "value": 1, "ts": %d}' % (T + 3_600_000)
  assert isinstance(parse_bytes(within, source_ts=T, max_future_ms=3_600_000), Reading)
  # CSV takes its event time from the source timestamp: never ahead of it.
  assert isinstance(parse_bytes(b'a,1', source_ts=T, max_future_ms=0), Reading)


def test_csv_without_source_timestamp():
  assert reason(b'a,5', source_ts=None) == parse.BAD_TIMESTAMP


def test_record_too_large_is_checked_before_decoding():
  assert reason(b'\xff' * 11, max_record_bytes=10) == parse.RECORD_TOO_LARGE
  assert isinstance(parse_bytes(b'a,1', max_record_bytes=3), Reading)


def test_every_reason_is_listed():
  assert len(set(parse.DEAD_LETTER_REASONS)) == len(parse.DEAD_LETTER_REASONS) == 13


def test_dead_letter_json_keeps_bytes_and_source():
  letter = parse_bytes(b'\xffoops', source_ts=T)
  out = letter.to_json_dict()
  assert out['reason'] == parse.INVALID_UTF8
  assert out['payload_base64'] == '/29vcHM='  # base64 of b'\xffoops'
  assert out['source']['timestamp_ms'] == T


def test_parse_fn_counts_and_routes():
  fn = parse._ParseFn(parse.RecordParser())
  good = list(fn.process(RawRecord(b'a,1', timestamp_ms=T)))
  bad = list(fn.process(RawRecord(b'a,x', timestamp_ms=T)))
  assert good[0].value == Reading('a', 1.0, T) and good[0].timestamp == T / 1000
  assert bad[0].tag == 'dead_letters' and bad[0].value.reason == parse.NON_NUMERIC_VALUE


def test_unknown_format_is_rejected():
  with pytest.raises(ValueError, match='input_format'):
    parse.RecordParser('xml')


def test_values_are_floats():
  r = parse_bytes(b'{"sensor_id": "a", "value": -0.0, "ts": 1700000000000}')
  assert r.value == 0.0 and not math.isnan(r.value)


class Counter:
  """Stands in for a Beam counter, which a DoFn called directly cannot report."""
  count = 0

  def inc(self):
    self.count += 1


def test_parse_fn_routes_readings_that_arrived_too_late():
  # Written to Kafka at T; max delay 35 s: an event time of T - 35 s is in time,
  # T - 35.001 s is late, and a record without a source timestamp is never judged late.
  fn = parse._ParseFn(parse.RecordParser(), max_delay_ms=35_000)
  fn._late = Counter()

  def route(ts_ms, source_ts=T):
    payload = b'{"sensor_id": "a", "value": 1, "ts": %d}' % ts_ms
    out = list(fn.process(RawRecord(payload, timestamp_ms=source_ts)))
    return getattr(out[0], 'tag', 'readings')

  assert route(T - 35_000) == 'readings'
  assert route(T - 35_001) == 'late'
  assert route(T - 10**9, source_ts=None) == 'readings'
  assert fn._late.count == 1
