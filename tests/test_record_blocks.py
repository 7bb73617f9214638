"""unpack_record_block: the Python side of the Kafka read's record blocks (RecordBlocks.java)."""

import struct

import pytest

from pipeline.kafka_io import unpack_record_block
from transforms.batch import ReadingBatch
from transforms.records import RawRecord


def _sized(data):
  # RecordBlocks.java: int32 length (-1 for none), then the bytes
  return struct.pack('>i', -1) if data is None else struct.pack('>i', len(data)) + data


def pack(topic: str, records):
  """The layout RecordBlocks.java writes: topic, then per record partition, offset,
  timestamp, key, value (big-endian)."""
  block = _sized(topic.encode('utf-8'))
  for partition, offset, ts_ms, key, value in records:
    block += struct.pack('>iqq', partition, offset, ts_ms) + _sized(key) + _sized(value)
  return block


def test_records_come_back_in_order_with_their_metadata():
  block = pack('sensor-dätä', [
      (3, 2**40, 1_700_000_000_123, b'k1', b'{"sensor_id": "s"}'),
      (0, 0, 1, None, b's,1.5'),  # no key
      (7, 5, 2, b'', None),  # empty key, no value: a tombstone reaches the dead letters
  ])
  assert list(unpack_record_block(block)) == [
      RawRecord(b'{"sensor_id": "s"}', 1_700_000_000_123, b'k1', 'sensor-dätä', 3, 2**40),
      RawRecord(b's,1.5', 1, None, 'sensor-dätä', 0, 0),
      RawRecord(b'', 2, b'', 'sensor-dätä', 7, 5),
  ]


def test_a_block_of_a_topic_without_records_is_empty():
  assert list(unpack_record_block(pack('t', []))) == []


def test_a_truncated_block_raises_instead_of_inventing_records():
  block = pack('t', [(0, 1, 2, b'k', b'value')])
  with pytest.raises(struct.error):
    list(unpack_record_block(block[:-8]))


def test_blocks_are_parsed_where_they_are_unpacked_into_batches_dead_letters_and_late():
  from apache_beam.transforms.window import GlobalWindow
  from transforms.batch import shard_of
  from transforms.parse import ParseReadings, RecordParser, _ParseFn
  from transforms.records import DeadLetter, Reading
  t = 1_700_000_000_000
  fn = _ParseFn(RecordParser(), max_delay_ms=60_000, unpack=unpack_record_block, batched=True)
  block = pack('readings', [
      (0, 1, t + 500, b's1', b'{"sensor_id": "s1", "value": 1.5, "ts": %d}' % (t + 400)),
      (0, 2, t + 600, b's1', b'not json'),
      (1, 7, t + 700, b's2', b'{"sensor_id": "s2", "value": 2.0, "ts": %d}' % (t - 90_000)),
      (1, 8, t + 800, b's1', b'{"sensor_id": "s1", "value": 3.0, "ts": %d}' % (t + 300)),
  ])
  fn.start_bundle()
  out = list(fn.process(block, GlobalWindow()))
  # a dead letter keeps its record's bytes and is stamped with its own Kafka timestamp
  (dead,), (late,) = ([o.value for o in out if o.tag == tag]
                      for tag in (ParseReadings.DEAD_LETTERS, ParseReadings.LATE))
  assert isinstance(dead.value, DeadLetter) and dead.value.record.payload == b'not json'
  assert dead.timestamp.micros == (t + 600) * 1000
  # 90 s older than its Kafka timestamp: late at once, stamped with that timestamp
  assert late.value == Reading('s2', 2.0, t - 90_000) and late.timestamp.micros == (t + 700) * 1000
  assert len(out) == 2  # readings wait for the bundle's end
  (batch,) = fn.finish_bundle()
  assert batch.value == (shard_of('s1'), ReadingBatch((Reading('s1', 1.5, t + 400),
                                                       Reading('s1', 3.0, t + 300))))
  assert batch.timestamp.micros == (t + 300) * 1000  # its earliest reading
