"""Reading the job's topics back with kafka-python: for the demo, the monitor and the tests.

No consumer group is used, so reading never disturbs the job's committed offsets.
"""

import time
from typing import Dict, List, Optional

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord


def _consumer(bootstrap: str, **config) -> KafkaConsumer:
  return KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **config)


def end_offsets(bootstrap: str, topic: str) -> Dict[int, int]:
  """{partition: offset of the next record} of every partition of topic."""
  consumer = _consumer(bootstrap)
  try:
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
    return {tp.partition: offset for tp, offset in consumer.end_offsets(partitions).items()}
  finally:
    consumer.close()


def read_topic(bootstrap: str, topic: str,
               start_offsets: Optional[Dict[int, int]] = None, **config) -> List[ConsumerRecord]:
  """Every record from start_offsets (default: the beginning) to the current end; config:
  more KafkaConsumer settings, e.g. security_protocol='SSL', ssl_cafile=...)."""
  consumer = _consumer(bootstrap, **config)
  try:
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
    consumer.assign(partitions)
    for tp in partitions:
      consumer.seek(tp, (start_offsets or {}).get(tp.partition, 0))
    end = consumer.end_offsets(partitions)
    records = []
    while any(consumer.position(tp) < end[tp] for tp in partitions):
      for batch in consumer.poll(timeout_ms=500).values():
        records.extend(batch)
    return records
  finally:
    consumer.close()


def group_lag(bootstrap: str, group_id: str, topic: str) -> Optional[int]:
  """Records of topic not yet committed by group_id (None before its first commit)."""
  admin = KafkaAdminClient(bootstrap_servers=bootstrap)
  try:
    committed = admin.list_consumer_group_offsets(group_id)
  finally:
    admin.close()
  committed = {tp.partition: meta.offset for tp, meta in committed.items() if tp.topic == topic}
  if not committed:
    return None
  end = end_offsets(bootstrap, topic)
  return sum(end[p] - committed.get(p, 0) for p in end)


def wait_for(predicate, timeout_s: float, what: str, interval_s: float = 1.0):
  """Polls predicate() until it returns a true value, which it returns; else TimeoutError."""
  deadline = time.monotonic() + timeout_s
  while True:
    value = predicate()
    if value:
      return value
    if time.monotonic() > deadline:
      raise TimeoutError(f'{what}: not reached after {timeout_s:.0f} s')
    time.sleep(interval_s)
