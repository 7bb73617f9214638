"""The record types that flow between the pipeline's steps.

Plain NamedTuples: cheap to pickle, readable in tests, and free of any source
or sink specifics (Kafka metadata is just optional fields of RawRecord).
"""

import base64
from datetime import datetime, timezone
from typing import Any, Dict, NamedTuple, Optional


class RawRecord(NamedTuple):
  """Bytes as a source delivered them, with where and when they came from."""
  payload: bytes
  timestamp_ms: Optional[int] = None  # source (e.g. Kafka record) timestamp
  key: Optional[bytes] = None
  topic: Optional[str] = None
  partition: Optional[int] = None
  offset: Optional[int] = None

  def source_metadata(self) -> Dict[str, Any]:
    return {
        'topic': self.topic,
        'partition': self.partition,
        'offset': self.offset,
        'timestamp_ms': self.timestamp_ms,
        'key': self.key.decode('utf-8', 'replace') if self.key else None,
    }


class Reading(NamedTuple):
  """One valid sensor reading; `ts_ms` is its event time."""
  sensor_id: str
  value: float
  ts_ms: int
  extra: Optional[Dict[str, Any]] = None  # other JSON fields, passed through


class DeadLetter(NamedTuple):
  """A record the pipeline could not use, kept with its original bytes."""
  reason: str  # machine-readable, one of parse.DEAD_LETTER_REASONS
  detail: str
  record: RawRecord

  def to_json_dict(self) -> Dict[str, Any]:
    return {
        'reason': self.reason,
        'detail': self.detail,
        'payload_base64': base64.b64encode(self.record.payload).decode('ascii'),
        'source': self.record.source_metadata(),
    }


def iso_ms(ts_ms: int) -> str:
  """Epoch milliseconds as ISO-8601 UTC with milliseconds, e.g. 2026-11-24T05:00:00.000Z."""
  moment = datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc)
  return moment.strftime('%Y-%m-%dT%H:%M:%S.') + f'{ts_ms % 1000:03d}Z'
