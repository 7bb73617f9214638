"""Load generator for the benchmark: the job's JSON readings for N sensors, fast.

Two modes:
  rate     a steady offered rate (readings/s), paced by the wall clock in small batches
           (one every --tick seconds), event time = Kafka timestamp = now;
  preload  --count records as fast as the producer goes, event time spread at --event_rate
           readings/s from --start_ms (the job sees a backlog it has to catch up on).

Records are what runners/simulator.py writes: key = sensor_id, value
`{"sensor_id": "sensor-0007", "value": 42.5, "ts": <epoch ms>}`, Kafka timestamp = ts. The
partition of a sensor is the Java client's default (murmur2 of the key), computed once per
sensor and passed explicitly: kafka-python's pure-Python murmur2 on every send would cost
more than the send itself. Values are level + noise from a small pre-formatted table per
sensor, and every --spike_every-th reading is a spike (+120, far outside any sensor's
noise; staggered over the sensors), so that the job has alerts whose latency can be
measured.

Two engines, measured here against a local broker (preload of 1,000 sensors):
  python  kafka-python; the per-record work is one bytes concatenation and one send()
          (acks=1, linger 20 ms, 256 KiB batches, no compression), still ~35 us of CPU per
          record: 28,000 records/s from one process at a full core, 42,000/s with
          --processes 2 (both cores);
  java    bench/LoadGen.java on the broker's kafka-clients, run by Java's source launcher
          (no build step): ~3 us of CPU per record, 48,000-65,000 records/s on a machine
          busy with other jobs, where the broker is the limit. Its start costs ~5 CPU-s
          (compiling the source). Default, because the job shares the two cores with it:
          60 s at 5,000/s took 10 CPU-s with java (half of it the start), 14 with python.

  python -m bench.load --bootstrap 127.0.0.1:9192 --topic t --sensors 1000 --rate 5000 --duration 60
  python -m bench.load --bootstrap 127.0.0.1:9192 --topic t --sensors 1000 --preload --count 1000000
  python -m bench.load --engine python --processes 2 ...   # kafka-python, two processes

The last line is JSON: {"mode", "sent", "seconds", "achieved_rps", "first_ts_ms", "last_ts_ms"}.
"""

import argparse
import json
import multiprocessing
import os
import random
import subprocess
import sys
import time
from typing import Dict, List, NamedTuple, Optional, Sequence

from kafka import KafkaProducer
from kafka.partitioner.default import murmur2

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VALUES_PER_SENSOR = 64
SPIKE = 120.0


class Sensor(NamedTuple):
  index: int
  key: bytes
  partition: int
  prefix: bytes  # b'{"sensor_id": "sensor-0007", "value": ' (CSV: b'sensor-0007,')
  values: List[bytes]  # pre-formatted normal values
  spike: bytes


def java_partition(key: bytes, partitions: int) -> int:
  """The partition the Java client's default partitioner gives a keyed record."""
  return (murmur2(key) & 0x7fffffff) % partitions


def sensor_id(index: int) -> str:
  return f'sensor-{index:04d}'


def make_sensors(indices: Sequence[int], partitions: int, seed: int = 1,
                 fmt: str = 'json') -> List[Sensor]:
  """Pre-encoded payload parts for the given sensor indices, in the job's JSON or the
  original job's CSV (`sensor-0007,42.5`, event time = the Kafka timestamp)."""
  sensors = []
  for i in indices:
    rng = random.Random(seed * 1_000_003 + i)
    sid = sensor_id(i)
    level, noise = rng.uniform(20.0, 200.0), rng.uniform(0.5, 3.0)
    values = [b'%.4f' % (level + rng.gauss(0.0, noise)) for _ in range(VALUES_PER_SENSOR)]
    key = sid.encode()
    prefix = b'%s,' % key if fmt == 'csv' else b'{"sensor_id": "%s", "value": ' % key
    sensors.append(Sensor(i, key, java_partition(key, partitions), prefix, values,
                          b'%.4f' % (level + SPIKE)))
  return sensors


def is_spike(sensor_index: int, n: int, spike_every: int) -> bool:
  """Whether the n-th reading of a sensor is a spike: every spike_every-th, staggered by
  sensor so that the fleet's spikes are spread evenly instead of all in one round."""
  return bool(spike_every) and (n + sensor_index) % spike_every == spike_every - 1


def payload(sensor: Sensor, n: int, ts_ms: int, spike_every: int) -> bytes:
  """The n-th reading of this sensor, at ts_ms, as the job's JSON (or CSV)."""
  value = sensor.spike if is_spike(sensor.index, n, spike_every) else \
      sensor.values[n % VALUES_PER_SENSOR]
  if sensor.prefix[:1] != b'{':
    return sensor.prefix + value
  return b'%s%s, "ts": %d}' % (sensor.prefix, value, ts_ms)


def due(rate: float, elapsed_s: float, sent: int) -> int:
  """How many records the steady schedule wants sent now, given `sent` so far."""
  return max(0, int(rate * elapsed_s) - sent)


def producer(bootstrap: str) -> KafkaProducer:
  return KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20,
                       batch_size=256 * 1024,
                       max_in_flight_requests_per_connection=5, compression_type=None)


def run_rate(bootstrap: str, topic: str, sensors: List[Sensor], rate: float,
             duration_s: float, tick_s: float = 0.01, spike_every: int = 0) -> Dict:
  """Offers `rate` readings/s for duration_s, round-robin over sensors, ts = now."""
  prod = producer(bootstrap)
  send = prod.send
  n_sensors = len(sensors)
  sent = 0
  start = time.time()
  first_ts = None
  try:
    while True:
      now = time.time()
      elapsed = now - start
      if elapsed >= duration_s:
        break
      ts_ms = int(now * 1000)
      first_ts = first_ts or ts_ms
      for _ in range(due(rate, elapsed, sent)):
        s = sensors[sent % n_sensors]
        send(topic, value=payload(s, sent // n_sensors, ts_ms, spike_every),
             key=s.key, partition=s.partition, timestamp_ms=ts_ms)
        sent += 1
      pause = tick_s - (time.time() - now)
      if pause > 0:
        time.sleep(pause)
    prod.flush()
  finally:
    prod.close()
  seconds = time.time() - start
  return {'mode': 'rate', 'offered_rps': rate, 'sent': sent, 'seconds': round(seconds, 3),
          'achieved_rps': round(sent / seconds, 1), 'first_ts_ms': first_ts,
          'last_ts_ms': int(start * 1000 + duration_s * 1000)}


def run_preload(bootstrap: str, topic: str, sensors: List[Sensor], count: int,
                start_ms: int, event_rate: float, spike_every: int = 0) -> Dict:
  """Sends `count` records as fast as possible; event time advances at event_rate."""
  prod = producer(bootstrap)
  send = prod.send
  n_sensors = len(sensors)
  step_ms = 1000.0 / event_rate
  start = time.time()
  try:
    for i in range(count):
      s = sensors[i % n_sensors]
      ts_ms = start_ms + int(i * step_ms)
      send(topic, value=payload(s, i // n_sensors, ts_ms, spike_every),
           key=s.key, partition=s.partition, timestamp_ms=ts_ms)
    prod.flush()
  finally:
    prod.close()
  seconds = time.time() - start
  return {'mode': 'preload', 'sent': count, 'seconds': round(seconds, 3),
          'achieved_rps': round(count / seconds, 1), 'first_ts_ms': start_ms,
          'last_ts_ms': start_ms + int((count - 1) * step_ms)}


def partitions_of(bootstrap: str, topic: str) -> int:
  client = KafkaProducer(bootstrap_servers=bootstrap)
  try:
    return len(client.partitions_for(topic))
  finally:
    client.close()


def _one_producer(args: argparse.Namespace, indices: List[int]) -> Dict:
  sensors = make_sensors(indices, args.partitions, args.seed, args.format)
  if args.preload:
    return run_preload(args.bootstrap, args.topic, sensors, args.count // args.processes,
                       args.start_ms, args.event_rate / args.processes, args.spike_every)
  return run_rate(args.bootstrap, args.topic, sensors, args.rate / args.processes,
                  args.duration, args.tick, args.spike_every)


def _worker(args: argparse.Namespace, indices: List[int], out) -> None:
  out.put(_one_producer(args, indices))


def combine(results: Sequence[Dict]) -> Dict:
  """One report for several producer processes: counts add up, time is the longest."""
  seconds = max(r['seconds'] for r in results)
  sent = sum(r['sent'] for r in results)
  combined = {'mode': results[0]['mode'], 'processes': len(results), 'sent': sent,
              'seconds': seconds, 'achieved_rps': round(sent / seconds, 1),
              'first_ts_ms': min(r['first_ts_ms'] for r in results if r['first_ts_ms']),
              'last_ts_ms': max(r['last_ts_ms'] for r in results)}
  if 'offered_rps' in results[0]:
    combined['offered_rps'] = sum(r['offered_rps'] for r in results)
  return combined


def java_command(args: argparse.Namespace) -> List[str]:
  cmd = [os.environ.get('JAVA', 'java'), '-Dorg.slf4j.simpleLogger.defaultLogLevel=warn',
         f'-Dloadgen.format={args.format}',
         '-cp', os.path.join(ROOT, '.cache/jars/kafka/*'), os.path.join(ROOT, 'bench/LoadGen.java')]
  if args.preload:
    return cmd + ['preload', args.bootstrap, args.topic, str(args.sensors), str(args.count),
                  str(args.event_rate), str(args.start_ms), str(args.spike_every)]
  return cmd + ['rate', args.bootstrap, args.topic, str(args.sensors), str(args.rate),
                str(args.duration), str(args.spike_every)]


def run_java(args: argparse.Namespace) -> Dict:
  """bench/LoadGen.java; its start (compiling the source, a few s) is not in its figures."""
  out = subprocess.run(java_command(args), check=True, capture_output=True, text=True).stdout
  result = json.loads(out.strip().splitlines()[-1])
  if not args.preload:
    result['offered_rps'] = args.rate
  return result


def generate(args: argparse.Namespace) -> Dict:
  """Runs the java producer, or args.processes kafka-python producers, each with its share
  of the sensors."""
  if args.start_ms is None:
    args.start_ms = int(time.time() * 1000)
  if args.engine == 'java':
    return run_java(args)
  args.partitions = args.partitions or partitions_of(args.bootstrap, args.topic)
  shares = [list(range(p, args.sensors, args.processes)) for p in range(args.processes)]
  if args.processes == 1:
    return combine([_one_producer(args, shares[0])])
  ctx = multiprocessing.get_context('spawn')
  queue = ctx.Queue()
  procs = [ctx.Process(target=_worker, args=(args, share, queue)) for share in shares]
  for proc in procs:
    proc.start()
  results = [queue.get() for _ in procs]
  for proc in procs:
    proc.join()
  return combine(results)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--bootstrap', default='127.0.0.1:9092', help='default 127.0.0.1:9092')
  parser.add_argument('--topic', required=True)
  parser.add_argument('--partitions', type=int, default=0,
                      help='partitions of the topic (default: asked from the broker)')
  parser.add_argument('--sensors', type=int, default=1000, help='default 1000')
  parser.add_argument('--format', choices=('json', 'csv'), default='json',
                      help="json (the job's) or csv (the original Java job's); default json")
  parser.add_argument('--rate', type=float, default=5000.0,
                      help='offered readings/s in rate mode (default 5000)')
  parser.add_argument('--duration', type=float, default=60.0, help='seconds (default 60)')
  parser.add_argument('--tick', type=float, default=0.01,
                      help='pacing interval, seconds (default 0.01)')
  parser.add_argument('--preload', action='store_true', help='send --count records at once')
  parser.add_argument('--count', type=int, default=1_000_000, help='preload size (default 1e6)')
  parser.add_argument('--event_rate', type=float, default=5000.0,
                      help='preload: event-time readings/s (default 5000)')
  parser.add_argument('--start_ms', type=int, default=None,
                      help='preload: event time of the first record (default now)')
  parser.add_argument('--spike_every', type=int, default=0,
                      help='every n-th reading of a sensor is a spike (default 0: none)')
  parser.add_argument('--engine', choices=('java', 'python'), default='java',
                      help='java (bench/LoadGen.java) or python (kafka-python); default java')
  parser.add_argument('--processes', type=int, default=1,
                      help='python engine: producer processes (default 1)')
  parser.add_argument('--seed', type=int, default=1)
  return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
  print(json.dumps(generate(parse_args(argv))))
  sys.stdout.flush()


if __name__ == '__main__':
  main()
