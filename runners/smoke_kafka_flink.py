"""Smoke test: ReadFromKafka -> Map -> WriteToKafka on Beam's portable Flink runner.

Proves that the project's Kafka broker, Flink job server, KafkaIO expansion service and
(optionally) standalone Flink cluster work together, without Docker:

  * the Java side of KafkaIO is expanded by runners/expansion_service.sh with the EMBEDDED
    environment, so it runs inside the Flink JVM;
  * Python workers are LOOPBACK (this process) for `--flink local`, or the EXTERNAL worker
    pool started by runners/flink_cluster.sh for `--flink cluster`.

Prerequisites: runners/kafka.sh start; runners/expansion_service.sh start; for the cluster
mode runners/flink_cluster.sh start. Run from the project's virtual environment:

  .venv/bin/python runners/smoke_kafka_flink.py --flink local  [--streaming]
  .venv/bin/python runners/smoke_kafka_flink.py --flink cluster [--streaming]

Writes N records to a fresh input topic, runs the pipeline (bounded with max_num_records, or
streaming and cancelled once the output is complete), and checks that the output topic holds
exactly the N transformed records. Prints the pipeline options used and the timings.
"""

import argparse
import json
import logging
import os
import sys
import time
import typing
import urllib.request
import uuid
from typing import Dict, List

import apache_beam as beam
from apache_beam.io.kafka import ReadFromKafka, WriteToKafka
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineState
from kafka import KafkaProducer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
# pylint: disable=wrong-import-position
from runners import kafka_topics
from runners.flink_options import flink_args
from runners.topic_reader import read_topic


def flink_jobs(rest: str) -> List[dict]:
  """Jobs known to the Flink REST API at host:port (name, state, jid)."""
  with urllib.request.urlopen('http://%s/jobs/overview' % rest, timeout=5) as response:
    return json.load(response)['jobs']


def wait_flink_job_gone(rest: str, job_name: str, timeout_s: float) -> str:
  """Waits until the Flink job named job_name is no longer RUNNING; returns its state."""
  deadline = time.monotonic() + timeout_s
  while True:
    states = [j['state'] for j in flink_jobs(rest) if j['name'] == job_name]
    if not any(state in ('RUNNING', 'CREATED', 'RESTARTING', 'CANCELLING') for state in states):
      return ','.join(states) or 'absent'
    if time.monotonic() > deadline:
      raise TimeoutError('Flink job %s still %s after %.0f s' % (job_name, states, timeout_s))
    time.sleep(1)


def pipeline_args(args: argparse.Namespace, job_name: str) -> List[str]:
  """The FlinkRunner options for the chosen mode (runners/flink_options.py)."""
  return flink_args(
      'embedded' if args.flink == 'local' else 'cluster', job_name,
      parallelism=args.parallelism, streaming=args.streaming,
      checkpoint_ms=5000 if args.streaming else None, flink_master=args.flink_master,
      worker_pool=args.worker_pool, job_endpoint=args.job_endpoint)


def produce(bootstrap: str, topic: str, n: int) -> Dict[bytes, bytes]:
  producer = KafkaProducer(bootstrap_servers=bootstrap, acks='all')
  expected = {}
  for i in range(n):
    key, value = b'k%04d' % i, b'value-%04d' % i
    producer.send(topic, key=key, value=value)
    expected[key] = value.upper()
  producer.flush()
  producer.close()
  return expected


def consume_all(bootstrap: str, topic: str) -> Dict[bytes, bytes]:
  """The whole topic from the beginning, as {key: value}."""
  return {record.key: record.value for record in read_topic(bootstrap, topic)}


def build(p: beam.Pipeline, args: argparse.Namespace, in_topic: str, out_topic: str) -> None:
  read_kwargs = {}
  if not args.streaming:
    read_kwargs['max_num_records'] = args.records
  _ = (
      p
      | 'ReadFromKafka' >> ReadFromKafka(
          consumer_config={
              'bootstrap.servers': args.bootstrap,
              'auto.offset.reset': 'earliest',
              'group.id': 'smoke-' + in_topic,
          },
          topics=[in_topic],
          expansion_service=args.expansion_service,
          **read_kwargs)
      | 'Upper' >> beam.Map(lambda kv: (kv[0], kv[1].upper())).with_output_types(
          typing.Tuple[bytes, bytes])
      | 'WriteToKafka' >> WriteToKafka(
          producer_config={'bootstrap.servers': args.bootstrap},
          topic=out_topic,
          expansion_service=args.expansion_service))


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--flink', choices=['local', 'cluster'], default='local',
                      help='local: [local] MiniCluster in the job server (default); '
                      'cluster: the standalone cluster at --flink_master')
  parser.add_argument('--flink_master', default='localhost:8081',
                      help='Flink REST address for --flink cluster (default localhost:8081)')
  parser.add_argument('--worker_pool', default='localhost:50000',
                      help='EXTERNAL Python worker pool for --flink cluster (default localhost:50000)')
  parser.add_argument('--job_endpoint', default=None,
                      help='use a running job server (host:port) instead of starting the jar')
  parser.add_argument('--bootstrap', default='127.0.0.1:%s' % os.environ.get('KAFKA_PORT', '9092'),
                      help='Kafka bootstrap servers (default 127.0.0.1:9092)')
  parser.add_argument('--expansion_service',
                      default='localhost:%s' % os.environ.get('EXPANSION_PORT', '8097'),
                      help='KafkaIO expansion service address (default localhost:8097)')
  parser.add_argument('--records', type=int, default=100, help='records to send (default 100)')
  parser.add_argument('--parallelism', type=int, default=2, help='Flink parallelism (default 2)')
  parser.add_argument('--streaming', action='store_true',
                      help='unbounded read in streaming mode, cancelled when output is complete')
  parser.add_argument('--timeout', type=float, default=300,
                      help='seconds to wait for the output (default 300)')
  args = parser.parse_args(argv)
  logging.basicConfig(
      level=logging.INFO, format='%(asctime)s %(levelname)s %(name)s: %(message)s', force=True)
  log = logging.getLogger('smoke')

  suffix = uuid.uuid4().hex[:8]
  in_topic, out_topic = 'smoke-in-' + suffix, 'smoke-out-' + suffix
  client = kafka_topics.admin(args.bootstrap)
  kafka_topics.create(client, {in_topic: 2, out_topic: 1})
  expected = produce(args.bootstrap, in_topic, args.records)
  log.info('wrote %d records to %s', len(expected), in_topic)

  job_name = 'smoke-' + suffix
  opts = pipeline_args(args, job_name)
  log.info('pipeline options: %s', ' '.join(opts))
  t0 = time.monotonic()
  p = beam.Pipeline(options=PipelineOptions(opts))
  build(p, args, in_topic, out_topic)
  result = p.run()
  t_submitted = time.monotonic() - t0
  log.info('submitted after %.1f s, state %s', t_submitted, result.state)

  got: Dict[bytes, bytes] = {}
  t_first = None
  ok = False
  try:
    if args.streaming:
      deadline = time.monotonic() + args.timeout
      while time.monotonic() < deadline:
        got = consume_all(args.bootstrap, out_topic)
        if got and t_first is None:
          t_first = time.monotonic() - t0
        if len(got) >= len(expected):
          break
        if PipelineState.is_terminal(result.state):
          log.error('pipeline ended early in state %s', result.state)
          break
        time.sleep(1)
    else:
      state = result.wait_until_finish(duration=int(args.timeout * 1000))
      log.info('pipeline finished in state %s', state)
      got = consume_all(args.bootstrap, out_topic)
    t_total = time.monotonic() - t0
    ok = got == expected
    log.info('output: %d records (expected %d), match=%s; submit %.1f s, first output %s, total %.1f s',
             len(got), len(expected), ok, t_submitted,
             '%.1f s' % t_first if t_first is not None else '-', t_total)
    if not ok:
      missing = sorted(set(expected) - set(got))[:5]
      wrong = sorted(k for k in got if expected.get(k) != got[k])[:5]
      log.error('missing keys (first 5): %s; wrong values (first 5): %s', missing, wrong)
  finally:
    if not PipelineState.is_terminal(result.state):
      log.info('cancelling the job')
      result.cancel()
    if args.flink == 'cluster':
      # Beam's cancel must reach the Flink job (see runners/java/flink-job-server).
      state = wait_flink_job_gone(args.flink_master, job_name, timeout_s=60)
      log.info('Flink job %s on the cluster: %s', job_name, state)
    kafka_topics.delete(client, [in_topic, out_topic])
    client.close()
  print('SMOKE %s: flink=%s streaming=%s records=%d/%d total=%.1fs' % (
      'OK' if ok else 'FAILED', args.flink, args.streaming, len(got), len(expected),
      time.monotonic() - t0))
  return 0 if ok else 1


if __name__ == '__main__':
  sys.exit(main())
