"""Hostile records for the bad-input-at-volume test: what a broken producer or an attacker
might write to the readings topic.

Every kind the issue names: random bytes, truncated JSON, deep nesting, wrong types, 1 MB
values, NaN and infinities, event times far in the past and far in the future, empty keys
and empty fields. Some of them are valid readings in disguise (old but in range: they are
late; odd extra fields: they are judged), which is the point: the test counts what leaves
the job, not what we think each record is.
"""

import json
import random
from typing import Callable, List, Tuple

ONE_MB = 1_000_000
DAY_MS = 86_400_000


def _random_bytes(rng: random.Random, ts_ms: int) -> bytes:
  return bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 300)))


def _truncated_json(rng: random.Random, ts_ms: int) -> bytes:
  full = json.dumps({'sensor_id': f'fuzz-{rng.randrange(50)}', 'value': rng.uniform(0, 100),
                     'ts': ts_ms}).encode()
  return full[:rng.randrange(1, len(full) - 1)]


def _deep_nesting(rng: random.Random, ts_ms: int) -> bytes:
  depth = rng.choice((100, 5_000, 20_000))
  if rng.random() < 0.5:
    return b'[' * depth + b']' * depth
  return (b'{"sensor_id": "fuzz", "value": 1, "ts": %d, "x": ' % ts_ms
          + b'{"a": ' * depth + b'1' + b'}' * depth + b'}')


def _wrong_types(rng: random.Random, ts_ms: int) -> bytes:
  reading = {'sensor_id': f'fuzz-{rng.randrange(50)}', 'value': 1.5, 'ts': ts_ms}
  field = rng.choice(('sensor_id', 'value', 'ts'))
  reading[field] = rng.choice((None, True, [], {}, [1, 2], {'v': 1}, '12abc', 3, ''))
  return json.dumps(reading).encode()


def _one_mb(rng: random.Random, ts_ms: int) -> bytes:
  if rng.random() < 0.5:
    return json.dumps({'sensor_id': 'x' * ONE_MB, 'value': 1, 'ts': ts_ms}).encode()[:ONE_MB]
  return rng.randbytes(ONE_MB)


def _non_finite(rng: random.Random, ts_ms: int) -> bytes:
  value = rng.choice((b'NaN', b'Infinity', b'-Infinity', b'1e999', b'-1e400'))
  return b'{"sensor_id": "fuzz-nan", "value": %s, "ts": %d}' % (value, ts_ms)


def _far_timestamps(rng: random.Random, ts_ms: int) -> bytes:
  ts = rng.choice((
      0, -1, 10**20, 2**63, 946684799999,      # before 2000 / absurd: out of range
      4102444800000, 4102444800000 * 10,       # 2100 and later: out of range
      ts_ms + 30 * DAY_MS,                     # next month: beyond the clock skew
      ts_ms - rng.randrange(1, 3650) * DAY_MS,  # days to years ago: a late reading
      '1999-12-31T23:59:59Z', '2026-02-30T00:00:00Z', 'yesterday', 1e308, float('nan')))
  return json.dumps({'sensor_id': 'fuzz-time', 'value': 2.0, 'ts': ts}).encode()


def _empty_things(rng: random.Random, ts_ms: int) -> bytes:
  return rng.choice((b'', b' ', b'{}', b',', b',5', b'a,', b'{"sensor_id": "", "value": 1, '
                     b'"ts": %d}' % ts_ms, b'\x00', b'null', b'""', b'[]'))


def _odd_but_valid(rng: random.Random, ts_ms: int) -> bytes:
  """Valid readings with strange extras: they must be judged like any other."""
  return json.dumps({'sensor_id': f'fuzz-ok-{rng.randrange(5)}', 'value': rng.uniform(0, 10),
                     'ts': ts_ms, 'extra': {'list': [1, 'two', None], 'unicode': '\u00e9\u2603'},
                     'n': rng.choice((None, True, 7))}).encode()


KINDS: List[Callable[[random.Random, int], bytes]] = [
    _random_bytes, _truncated_json, _deep_nesting, _wrong_types, _non_finite,
    _far_timestamps, _empty_things, _odd_but_valid]


def fuzzed(count: int, ts_ms: Callable[[int], int], seed: int = 5,
           one_mb: int = 5) -> List[Tuple[bytes, bytes]]:
  """(key, payload) of `count` hostile records; record i claims event time ts_ms(i).
  `one_mb` of them are 1 MB values (kept few: the test is about volume of records)."""
  rng = random.Random(seed)
  big = set(rng.sample(range(count), one_mb))
  records = []
  for i in range(count):
    make = _one_mb if i in big else rng.choice(KINDS)
    key = rng.choice((b'', None, b'fuzz', rng.randbytes(8)))
    records.append((key, make(rng, ts_ms(i))))
  return records
