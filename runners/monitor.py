"""Live console view of the alerts topic: what tailing the TaskManager log was for the original job.

  .venv/bin/python -m runners.monitor [--bootstrap 127.0.0.1:9092] [--topic anomaly-alerts]
                                      [--from-beginning] [--json]

One line per alert (event time, sensor, value, baseline mean, score), as alerts arrive.
Reads without a consumer group, so it never takes partitions from another reader.
"""

import argparse
import json
import sys
from typing import Optional

from kafka import KafkaConsumer, TopicPartition


def format_alert(alert: dict, label: Optional[str] = None) -> str:
  """One console line for an alert dict (as the job writes it)."""
  mean = alert.get('window_mean')
  line = 'ALERT %s %-12s value=%9.2f mean=%9s score=%.3f' % (
      alert.get('ts', '?')[:23].replace('T', ' '), alert.get('sensor_id', '?'),
      float(alert.get('value', float('nan'))),
      '%.2f' % mean if isinstance(mean, (int, float)) else '-',
      float(alert.get('score') or 0.0))
  return line + (f' ({label})' if label else '')


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--bootstrap', default='127.0.0.1:9092',
                      help='Kafka bootstrap servers (default 127.0.0.1:9092)')
  parser.add_argument('--topic', default='anomaly-alerts', help='alerts topic (default anomaly-alerts)')
  parser.add_argument('--from-beginning', action='store_true',
                      help='show the alerts already in the topic first (default: new ones only)')
  parser.add_argument('--json', action='store_true', help='print the alerts as JSON lines')
  args = parser.parse_args(argv)
  consumer = KafkaConsumer(bootstrap_servers=args.bootstrap, enable_auto_commit=False)
  partitions = [TopicPartition(args.topic, p)
                for p in sorted(consumer.partitions_for_topic(args.topic) or [])]
  if not partitions:
    print(f'monitor: no topic {args.topic} at {args.bootstrap}', file=sys.stderr)
    return 1
  consumer.assign(partitions)
  if args.from_beginning:
    consumer.seek_to_beginning(*partitions)
  else:
    consumer.seek_to_end(*partitions)
  print(f'monitor: showing alerts from {args.topic} at {args.bootstrap} (Ctrl-C to stop)',
        file=sys.stderr)
  try:
    while True:
      for batch in consumer.poll(timeout_ms=500).values():
        for record in batch:
          try:
            alert = json.loads(record.value)
          except ValueError:
            print(f'monitor: not JSON at offset {record.offset}: {record.value[:80]!r}',
                  file=sys.stderr)
            continue
          print(json.dumps(alert, sort_keys=True) if args.json else format_alert(alert),
                flush=True)
  except KeyboardInterrupt:
    return 0
  finally:
    consumer.close()


if __name__ == '__main__':
  sys.exit(main())
