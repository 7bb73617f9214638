"""Writes a small file of sensor readings (JSON lines) with a few spikes and bad records.

Usage: python runners/sample_readings.py --out readings.jsonl [--sensors 5] [--seconds 120]
"""

import argparse
import json
import os
import random

T0_MS = 1_700_000_000_000


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument('--out', required=True)
  parser.add_argument('--sensors', type=int, default=5)
  parser.add_argument('--seconds', type=int, default=120)
  parser.add_argument('--seed', type=int, default=1)
  args = parser.parse_args()
  rng = random.Random(args.seed)
  lines = []
  for t in range(args.seconds):
    for k in range(args.sensors):
      value = 100.0 + 10 * k + rng.gauss(0, 3)
      if t % 40 == 30 and k == t // 40 % args.sensors:
        value += 200.0  # an injected spike
      lines.append(json.dumps({'sensor_id': f'sensor-{k}', 'value': round(value, 3),
                               'ts': T0_MS + t * 1000}))
  lines += ['not a reading', '{"sensor_id": "sensor-0", "value": "high"}']
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, 'w') as out:
    out.write('\n'.join(lines) + '\n')


if __name__ == '__main__':
  main()
