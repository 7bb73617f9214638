"""The machine a benchmark ran on and the versions it ran, for the results file.

Figures from a shared 2-core machine mean little without how busy it was (load average
before and after) and what ran: cores, memory, CPU model; Beam, Flink, the Kafka broker,
the kafka-clients inside KafkaIO, Java and Python. Versions come from what is installed
(.cache/flink's install stamp, the jar names in .cache/jars), so they are the ones used.
"""

import glob
import os
import platform
import re
import subprocess
from typing import Callable, Dict, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_model(cpuinfo: str) -> Optional[str]:
  """The first 'model name' of a /proc/cpuinfo text."""
  for line in cpuinfo.splitlines():
    key, _, value = line.partition(':')
    if key.strip() == 'model name':
      return value.strip()
  return None


def mem_total_mb(meminfo: str) -> Optional[int]:
  """MemTotal of a /proc/meminfo text, in MB."""
  match = re.search(r'^MemTotal:\s+(\d+) kB', meminfo, re.MULTILINE)
  return int(match.group(1)) // 1024 if match else None


def version_in_name(pattern: str, regex: str) -> Optional[str]:
  """The version captured by regex from the first file name matching the glob pattern."""
  for path in sorted(glob.glob(pattern)):
    match = re.search(regex, os.path.basename(path))
    if match:
      return match.group(1)
  return None


def java_version(java: str = 'java') -> Optional[str]:
  """The first line `java -version` prints (on stderr), e.g. 'openjdk version "17.0.13"'."""
  try:
    out = subprocess.run([java, '-version'], capture_output=True, text=True, timeout=60)
  except (OSError, subprocess.TimeoutExpired):
    return None
  lines = (out.stderr or out.stdout).strip().splitlines()
  return lines[0] if lines else None


def versions(root: str = ROOT, java: Callable[[], Optional[str]] = java_version) -> Dict:
  import apache_beam  # pylint: disable=import-outside-toplevel  (heavy; only when asked)
  import kafka  # pylint: disable=import-outside-toplevel
  jars = os.path.join(root, '.cache', 'jars')
  return {
      'beam': apache_beam.__version__,
      'flink': version_in_name(os.path.join(root, '.cache', 'flink', '.installed-*'),
                               r'^\.installed-(.+)$'),
      'kafka_broker': version_in_name(os.path.join(jars, 'kafka', 'kafka_2.13-*.jar'),
                                      r'^kafka_2\.13-(.+)\.jar$'),
      'kafka_clients_in_kafkaio': version_in_name(
          os.path.join(jars, 'expansion-service', 'kafka-clients-*.jar'),
          r'^kafka-clients-(.+)\.jar$'),
      'kafka_python': kafka.__version__,
      'java': java(),
      'python': platform.python_version(),
  }


def _read(path: str) -> str:
  try:
    with open(path, encoding='utf-8') as handle:
      return handle.read()
  except OSError:
    return ''


def details(root: str = ROOT, java: Callable[[], Optional[str]] = java_version) -> Dict:
  """Cores, memory, CPU model, the load average now, and the versions."""
  return {'cores': os.cpu_count(), 'cpu_model': cpu_model(_read('/proc/cpuinfo')),
          'memory_mb': mem_total_mb(_read('/proc/meminfo')),
          'kernel': platform.release(), 'loadavg_before': list(os.getloadavg()),
          'versions': versions(root, java)}
