"""Builds a self-contained Flink job server jar for `--flink_submit_uber_jar`.

  python -m runners.uber_jar            # -> .cache/jars/flink-uber/<name>-uber.jar (path printed)

With --flink_submit_uber_jar, Beam copies the jar of --flink_job_server_jar, adds the
pipeline to it and uploads it to the Flink REST API, so that jar must hold every class of
the job server. The jar of .cache/jars/flink-job-server is a thin launcher whose manifest
only names its classpath; this merges that classpath into one jar, like a shaded build:
the first copy of a class wins, META-INF/services files are concatenated (Beam and Kafka
find their registrars through them) and jar signatures are dropped. Rebuilt only when the
job server jars change.
"""

import hashlib
import os
import sys
import zipfile
from typing import Dict, List

from runners.flink_options import ROOT, job_server_jar

OUT_DIR = os.path.join(ROOT, '.cache/jars/flink-uber')
_SIGNATURES = ('.SF', '.DSA', '.RSA', '.EC')


def classpath(launcher: str) -> List[str]:
  """The launcher jar's manifest Class-Path, as absolute paths."""
  with zipfile.ZipFile(launcher) as jar:
    manifest = jar.read('META-INF/MANIFEST.MF').decode('utf-8')
  # Manifest lines are folded at 72 bytes: a continuation starts with one space.
  unfolded = manifest.replace('\r\n', '\n').replace('\n ', '')
  for line in unfolded.splitlines():
    if line.startswith('Class-Path:'):
      folder = os.path.dirname(launcher)
      return [os.path.join(folder, entry) for entry in line.split(':', 1)[1].split()]
  raise ValueError(f'{launcher} has no Class-Path in its manifest')


def _skipped(name: str) -> bool:
  upper = name.upper()
  return (upper == 'META-INF/MANIFEST.MF' or name.endswith('/')
          or (upper.startswith('META-INF/') and upper.count('/') == 1
              and upper.endswith(_SIGNATURES)))


def build_uber_jar(launcher: str, out_path: str) -> None:
  services: Dict[str, List[bytes]] = {}
  seen = set()
  tmp_path = out_path + '.tmp'
  with zipfile.ZipFile(tmp_path, 'w', zipfile.ZIP_DEFLATED, compresslevel=1) as out:
    out.writestr('META-INF/MANIFEST.MF', 'Manifest-Version: 1.0\r\n'
                 'Main-Class: org.apache.beam.runners.flink.FlinkPipelineRunner\r\n\r\n')
    for path in [launcher] + classpath(launcher):
      with zipfile.ZipFile(path) as jar:
        for info in jar.infolist():
          name = info.filename
          if _skipped(name):
            continue
          if name.startswith('META-INF/services/'):
            services.setdefault(name, []).append(jar.read(info).rstrip(b'\n') + b'\n')
          elif name not in seen:
            seen.add(name)
            out.writestr(info, jar.read(info))
    for name, parts in services.items():
      out.writestr(name, b''.join(parts))
  os.replace(tmp_path, out_path)


def uber_jar() -> str:
  """Path of the uber jar of the current job server jars, built if missing."""
  launcher = job_server_jar()
  digest = hashlib.sha256()
  for path in [launcher] + classpath(launcher):
    digest.update(f'{os.path.basename(path)}:{os.path.getsize(path)}\n'.encode())
  name = os.path.basename(launcher)[:-len('.jar')]
  out_path = os.path.join(OUT_DIR, f'{name}-uber-{digest.hexdigest()[:12]}.jar')
  if not os.path.exists(out_path):
    os.makedirs(OUT_DIR, exist_ok=True)
    for old in os.listdir(OUT_DIR):  # jars of earlier job server versions
      os.remove(os.path.join(OUT_DIR, old))
    build_uber_jar(launcher, out_path)
  return out_path


if __name__ == '__main__':
  print(uber_jar())
  sys.exit(0)
