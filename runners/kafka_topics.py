"""Create, list or delete the project's Kafka topics (kafka-python admin client).

Topic names and partition counts come from the environment, so that scripts, tests and the
pipeline's options can agree on them:

  TOPIC_READINGS       (default sensor-readings)  READINGS_PARTITIONS (default 4)
  TOPIC_ALERTS         (default anomaly-alerts)   OUTPUT_PARTITIONS   (default 1, the others)
  TOPIC_WINDOW_STATS   (default window-stats)
  TOPIC_DEAD_LETTERS   (default dead-letters)
  TOPIC_LATE           (default late-readings)

Usage:
  python runners/kafka_topics.py [--bootstrap 127.0.0.1:9092] create [NAME[:PARTITIONS] ...]
  python runners/kafka_topics.py ping | list | delete NAME ...

`create` without names creates the five project topics; existing topics are left as they are.
"""

import argparse
import os
import sys
import time
from typing import Dict, List, Sequence

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError, UnknownTopicOrPartitionError


def project_topics() -> Dict[str, int]:
  """Returns {topic name: partitions} for the pipeline's topics, from the environment."""
  readings = int(os.environ.get('READINGS_PARTITIONS', '4'))
  others = int(os.environ.get('OUTPUT_PARTITIONS', '1'))
  return {
      os.environ.get('TOPIC_READINGS', 'sensor-readings'): readings,
      os.environ.get('TOPIC_ALERTS', 'anomaly-alerts'): others,
      os.environ.get('TOPIC_WINDOW_STATS', 'window-stats'): others,
      os.environ.get('TOPIC_DEAD_LETTERS', 'dead-letters'): others,
      os.environ.get('TOPIC_LATE', 'late-readings'): others,
  }


def parse_specs(specs: Sequence[str]) -> Dict[str, int]:
  """Parses 'name' or 'name:partitions' arguments."""
  topics = {}
  for spec in specs:
    name, _, partitions = spec.partition(':')
    topics[name] = int(partitions) if partitions else 1
  return topics


def admin(bootstrap: str, timeout_s: float = 10.0) -> KafkaAdminClient:
  return KafkaAdminClient(
      bootstrap_servers=bootstrap,
      client_id='anomaly-topics',
      request_timeout_ms=int(timeout_s * 1000))


def wait_for_topics(client: KafkaAdminClient, names: List[str], timeout_s: float) -> None:
  """Polls metadata until every topic has a leader for each partition."""
  deadline = time.monotonic() + timeout_s
  while True:
    described = client.describe_topics(names)
    # kafka-python 3 names the fields 'name' / 'leader_id' (2.x: 'topic' / 'leader').
    missing = [
        t.get('name', t.get('topic')) for t in described
        if t['error_code'] != 0 or not t['partitions']
        or any(p.get('leader_id', p.get('leader', -1)) < 0 for p in t['partitions'])
    ]
    if not missing:
      return
    if time.monotonic() > deadline:
      raise TimeoutError(f'topics without leaders after {timeout_s}s: {missing}')
    time.sleep(0.2)


def create(client: KafkaAdminClient, topics: Dict[str, int]) -> None:
  existing = set(client.list_topics())
  new = [
      NewTopic(name=name, num_partitions=partitions, replication_factor=1)
      for name, partitions in topics.items() if name not in existing
  ]
  for topic in new:
    try:
      client.create_topics([topic])
      print(f'created {topic.name} ({topic.num_partitions} partitions)', file=sys.stderr)
    except TopicAlreadyExistsError:
      pass
  wait_for_topics(client, list(topics), timeout_s=30)


def delete(client: KafkaAdminClient, names: Sequence[str]) -> None:
  for name in names:
    try:
      client.delete_topics([name])
      print(f'deleted {name}', file=sys.stderr)
    except UnknownTopicOrPartitionError:
      pass


def main(argv: Sequence[str] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument(
      '--bootstrap',
      default=f"127.0.0.1:{os.environ.get('KAFKA_PORT', '9092')}",
      help='Kafka bootstrap servers (default 127.0.0.1:$KAFKA_PORT or 127.0.0.1:9092)')
  parser.add_argument('command', choices=['ping', 'create', 'list', 'delete'])
  parser.add_argument('topics', nargs='*', help='NAME or NAME:PARTITIONS')
  args = parser.parse_args(argv)
  try:
    client = admin(args.bootstrap)
  except KafkaError as e:
    print(f'cannot reach Kafka at {args.bootstrap}: {e!r}', file=sys.stderr)
    return 1
  try:
    if args.command == 'ping':
      client.list_topics()
    elif args.command == 'list':
      for name in sorted(client.list_topics()):
        print(name)
    elif args.command == 'create':
      create(client, parse_specs(args.topics) if args.topics else project_topics())
    elif args.command == 'delete':
      if not args.topics:
        parser.error('delete needs topic names')
      delete(client, args.topics)
  finally:
    client.close()
  return 0


if __name__ == '__main__':
  sys.exit(main())


TOPIC_KEYS = ('readings', 'alerts', 'stats', 'dead', 'late')


def job_topic_args(topics: Dict[str, str]) -> List[str]:
  """The job's topic options for {key: topic name} with TOPIC_KEYS as keys (tests, bench)."""
  return [f"--readings_topic={topics['readings']}",
          f"--alerts_topic={topics['alerts']}",
          f"--window_stats_topic={topics['stats']}",
          f"--dead_letters_topic={topics['dead']}",
          f"--late_topic={topics['late']}"]
