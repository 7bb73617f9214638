"""Sensor simulator: realistic readings with injected anomalies and malformed records, to Kafka.

N sensors, each with its own level, noise and slow drift, at R readings/s in total.
Injects spikes, dips and level shifts, and a share of malformed records, and writes the
ground truth (JSON lines) so a run can be scored: which readings are anomalies (with the
alert_id the pipeline will give them) and which records are malformed.

  python -m runners.simulator --bootstrap 127.0.0.1:9092 --topic sensor-readings \
      --sensors 10 --rate 50 --duration 120 --truth .local/truth.jsonl
  python -m runners.simulator --format csv --topic sensor-data_2 ...   # the original job's format
"""

import argparse
import json
import math
import random
import time
from typing import Callable, Iterator, NamedTuple, Optional

from transforms.judge import alert_id
from transforms.records import Reading

MALFORMED_SAMPLES = (
    (b'{"sensor_id": "sensor-x", "value": 1.0,', 'malformed_json'),
    (b'{"sensor_id": "sensor-x", "value": "high", "ts": 1700000000000}', 'non_numeric_value'),
    (b'{"value": 3.0, "ts": 1700000000000}', 'missing_field'),
    (b'\xff\xfe\x00garbage', 'invalid_utf8'),
    (b'{"sensor_id": "sensor-x", "value": NaN, "ts": 1700000000000}', 'non_finite_value'),
    (b'[1, 2, 3]', 'malformed_csv'),
)


class Record(NamedTuple):
  """One record to produce, with what the ground truth says about it."""
  key: bytes
  payload: bytes
  ts_ms: int
  kind: str  # normal, spike, dip, level_shift, shifted, malformed
  reason: Optional[str] = None  # the expected dead-letter reason of a malformed record
  sensor_id: Optional[str] = None
  value: Optional[float] = None


class SensorModel:
  """Level + slow sinusoidal drift + Gaussian noise; a level shift moves the level for good."""

  def __init__(self, rng: random.Random, index: int):
    self.sensor_id = f'sensor-{index:04d}'
    self.level = rng.uniform(20.0, 200.0)
    self.noise = rng.uniform(0.5, 3.0)
    self.drift_amplitude = rng.uniform(0.0, 5.0)
    self.drift_period_s = rng.uniform(600.0, 3600.0)
    self.phase = rng.uniform(0.0, 2 * math.pi)

  def value(self, rng: random.Random, t_s: float) -> float:
    drift = self.drift_amplitude * math.sin(2 * math.pi * t_s / self.drift_period_s + self.phase)
    return self.level + drift + rng.gauss(0.0, self.noise)


def generate(sensors: int, total: int, rate: float, start_ms: int, anomalies: int,
             malformed: int, seed: int = 1, fmt: str = 'json',
             shift_settle_s: float = 10.0, warmup_s: float = 15.0) -> Iterator[Record]:
  """Yields `total` readings plus `malformed` bad records, `anomalies` of the readings injected.

  Anomalies are placed after `warmup_s` of event time (every sensor has a baseline by
  then), at least `shift_settle_s` apart per sensor. Readings of a level-shifted sensor
  within `shift_settle_s` after the shift are marked 'shifted': alerts on them are expected.
  """
  rng = random.Random(seed)
  models = [SensorModel(rng, i) for i in range(sensors)]
  step_ms = 1000.0 / rate
  first_anomaly = min(int(warmup_s * rate) + sensors, total // 2)
  # Stratified: anomaly k in the k-th equal stretch, on sensor k % sensors, so the
  # anomalies of one sensor are `sensors` stretches apart.
  stretch = (total - first_anomaly) / max(anomalies, 1)
  chosen = set()
  for k in range(anomalies):
    i = first_anomaly + int((k + rng.uniform(0.2, 0.8)) * stretch)
    chosen.add(i - i % sensors + k % sensors)
  gap_s = stretch * sensors / rate
  if anomalies and gap_s < shift_settle_s:
    raise ValueError(f'anomalies of one sensor would be {gap_s:.1f} s apart, less than '
                     f'{shift_settle_s} s: inject fewer or produce more readings')
  bad_at = set(rng.sample(range(total), malformed)) if malformed else set()
  shifted_until = {}
  for i in range(total):
    ts_ms = start_ms + int(i * step_ms)
    model = models[i % sensors]
    value = model.value(rng, ts_ms / 1000.0)
    kind = 'normal'
    if i in chosen:
      kind = rng.choice(('spike', 'dip', 'level_shift'))
      magnitude = rng.uniform(80.0, 160.0)
      if kind == 'spike':
        value += magnitude
      elif kind == 'dip':
        value -= magnitude
      else:
        model.level += magnitude if rng.random() < 0.5 else -magnitude
        value = model.value(rng, ts_ms / 1000.0)
        shifted_until[model.sensor_id] = ts_ms + shift_settle_s * 1000
    elif shifted_until.get(model.sensor_id, 0) > ts_ms:
      kind = 'shifted'
    value = round(value, 4)
    if i in bad_at:
      payload, reason = MALFORMED_SAMPLES[rng.randrange(len(MALFORMED_SAMPLES))]
      yield Record(b'', payload, ts_ms, 'malformed', reason)
    if fmt == 'csv':
      payload = f'{model.sensor_id},{value}'.encode()
    else:
      payload = json.dumps({'sensor_id': model.sensor_id, 'value': value, 'ts': ts_ms}).encode()
    yield Record(model.sensor_id.encode(), payload, ts_ms, kind, None, model.sensor_id, value)


def truth_line(record: Record) -> Optional[str]:
  """The ground-truth line of a record, or None for a normal reading."""
  if record.kind == 'normal':
    return None
  if record.kind == 'malformed':
    return json.dumps({'kind': 'malformed', 'reason': record.reason,
                       'payload_hex': record.payload.hex()})
  reading = Reading(record.sensor_id, record.value, record.ts_ms)
  return json.dumps({'kind': record.kind, 'sensor_id': record.sensor_id, 'ts_ms': record.ts_ms,
                     'value': record.value, 'alert_id': alert_id(reading)})


def produce(producer, topic: str, records: Iterator[Record], pace: bool = True,
            truth=None, partitions: Optional[int] = None,
            on_record: Optional[Callable[[Record], None]] = None) -> int:
  """Sends records (paced to their event time unless pace=False); returns how many.

  partitions: when given, a sensor's records go to partition (sensor index % partitions)
  instead of the key's hash, so tests can leave chosen partitions idle.
  """
  produced = 0
  for record in records:
    if pace:
      delay = record.ts_ms / 1000.0 - time.time()
      if delay > 0:
        time.sleep(delay)
    partition = None
    if partitions:  # malformed records (no sensor) go to partition 0
      partition = int(record.sensor_id.rsplit('-', 1)[1]) % partitions if record.sensor_id else 0
    producer.send(topic, key=record.key or None, value=record.payload,
                  timestamp_ms=record.ts_ms, partition=partition)
    produced += 1
    line = truth_line(record)
    if truth and line:
      truth.write(line + '\n')
    if on_record:
      on_record(record)
  producer.flush()
  return produced


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--bootstrap', default='127.0.0.1:9092')
  parser.add_argument('--topic', default='sensor-readings')
  parser.add_argument('--format', choices=('json', 'csv'), default='json')
  parser.add_argument('--sensors', type=int, default=10)
  parser.add_argument('--rate', type=float, default=50.0, help='readings per second, all sensors (default 50)')
  parser.add_argument('--count', type=int, help='readings to produce (default: rate x duration)')
  parser.add_argument('--duration', type=float, default=60.0, help='seconds (default 60)')
  parser.add_argument('--anomalies', type=int, help='injected anomalies (default 1 per 500 readings)')
  parser.add_argument('--malformed', type=int, help='malformed records (default 1 per 200 readings)')
  parser.add_argument('--start_ms', type=int, help='event time of the first reading, epoch ms (default now)')
  parser.add_argument('--shift_settle', type=float, default=15.0,
                      help='seconds after a level shift whose alerts are expected (default 15 = '
                      'window size + period of the default job)')
  parser.add_argument('--truth', help='write the ground truth here (JSON lines)')
  parser.add_argument('--seed', type=int, default=1)
  parser.add_argument('--no-pacing', action='store_true', help='produce as fast as possible')
  args = parser.parse_args(argv)
  total = args.count or int(args.rate * args.duration)
  anomalies = args.anomalies if args.anomalies is not None else total // 500
  malformed = args.malformed if args.malformed is not None else total // 200

  from kafka import KafkaProducer
  producer = KafkaProducer(bootstrap_servers=args.bootstrap, linger_ms=20, acks='all')
  start = time.time()
  start_ms = args.start_ms if args.start_ms is not None else int(start * 1000)
  records = generate(args.sensors, total, args.rate, start_ms, anomalies, malformed,
                     args.seed, args.format, shift_settle_s=args.shift_settle)
  truth = open(args.truth, 'w', encoding='utf-8') if args.truth else None
  try:
    produced = produce(producer, args.topic, records, pace=not args.no_pacing, truth=truth)
  finally:
    if truth:
      truth.close()
    producer.close()
  print(f'simulator: produced {produced} records ({total} readings, {anomalies} anomalies, '
        f'{malformed} malformed) in {time.time() - start:.1f} s')


if __name__ == '__main__':
  main()
