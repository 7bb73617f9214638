"""unpack_record_block: the Python side of the Kafka read's record blocks (RecordBlocks.java)."""

import struct

import pytest

from pipeline.kafka_io import unpack_record_block
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
