"""The lib folder of the project's Flink cluster: Flink's own jars plus the job's Java runtime.

Beam's Flink job server ships its whole classpath (~190 jars, ~200 MB) with every job it
submits; uploading them took 18-25 s of each submission here, most of the time a savepoint
resume or a new job takes. runners/flink_cluster.sh instead starts the JobManager and the
TaskManagers with FLINK_LIB_DIR set to a folder this module fills, once per cluster start:

- every jar of the distribution's lib/ (flink-dist, log4j, ...);
- the job server's classpath, in the launcher's manifest Class-Path order, named
  `beam-<NNN>-<name>` so that Flink's sorted listing keeps that order (the corrected Beam
  classes of flink-runner-fixes must come before Beam's own), minus
  * Flink's own jars (every class under org/apache/flink/): flink-dist has them, in the
    cluster's version, and Flink loads that package from its own classpath first anyway;
  * logging (classes under org/slf4j/): the cluster logs through its own log4j binding, and a
    second binding would take over;
  * the launcher jar itself: the JVM would follow its manifest Class-Path back to the job
    server's folder, putting every excluded jar (slf4j-simple, Flink 1.19.0 ahead of the
    cluster's flink-dist) on the cluster's classpath after all. Its classes (the job-cancel
    listener, ClasspathOnCluster) are the job server's, not the job's.

Each jar is a hard link (a copy where that fails), not a symbolic link: the JVM resolves a
jar's manifest Class-Path (Beam's jars name their dependencies there) from the file's real
location, and through a symbolic link it found the job server's folder and put slf4j-api 2
on the cluster's classpath, which silenced Flink's logging. Under its new name here a
manifest entry names no file and is ignored.

Jobs submitted with runners/flink_options.flink_args(mode='cluster') then ship no jars
(local.anomaly.flink.ClasspathOnCluster).

    python -m runners.cluster_lib FLINK_HOME/lib OUT_DIR
(the launcher is runners/flink_options.job_server_jar(), the jar jobs are submitted with)
"""

import os
import shutil
import sys
import zipfile
from typing import List

SKIPPED_PACKAGES = ('org/apache/flink/', 'org/slf4j/')


def manifest_classpath(launcher_jar: str) -> List[str]:
  """The jar paths named by the launcher's manifest Class-Path, in order (relative to it)."""
  with zipfile.ZipFile(launcher_jar) as jar:
    manifest = jar.read('META-INF/MANIFEST.MF').decode('utf-8')
  # Manifest lines are folded at 72 bytes: a continuation line starts with one space.
  unfolded = manifest.replace('\r\n', '\n').replace('\n ', '')
  for line in unfolded.split('\n'):
    if line.startswith('Class-Path:'):
      folder = os.path.dirname(os.path.abspath(launcher_jar))
      return [os.path.join(folder, name) for name in line[len('Class-Path:'):].split()]
  raise ValueError(f'{launcher_jar} has no Class-Path in its manifest')


def cluster_provides(jar_path: str) -> bool:
  """Whether every class of the jar lies in a package the cluster loads from its own jars
  (Flink, logging); a jar without classes is kept."""
  with zipfile.ZipFile(jar_path) as jar:
    classes = [n for n in jar.namelist()
               if n.endswith('.class') and not n.startswith('META-INF/')]
  return bool(classes) and all(n.startswith(SKIPPED_PACKAGES) for n in classes)


def assemble(flink_lib: str, launcher_jar: str, out_dir: str) -> List[str]:
  """Fills out_dir afresh (see the module docstring); returns the job runtime's jars linked."""
  if os.path.isdir(out_dir):
    shutil.rmtree(out_dir)
  os.makedirs(out_dir)
  for name in sorted(os.listdir(flink_lib)):
    if name.endswith('.jar'):
      _link(os.path.join(flink_lib, name), os.path.join(out_dir, name))
  runtime = [p for p in manifest_classpath(launcher_jar)
             if os.path.exists(p) and not cluster_provides(p)]
  for i, path in enumerate(runtime):
    _link(path, os.path.join(out_dir, f'beam-{i:03d}-{os.path.basename(path)}'))
  return runtime


def _link(source: str, target: str) -> None:
  """A hard link, or a copy across file systems (see the module docstring)."""
  try:
    os.link(source, target)
  except OSError:
    shutil.copyfile(source, target)


if __name__ == '__main__':
  if len(sys.argv) != 3:
    sys.exit(__doc__.rsplit('\n\n', 1)[-1])
  from runners.flink_options import job_server_jar  # pylint: disable=import-outside-toplevel
  linked = assemble(sys.argv[1], job_server_jar(), sys.argv[2])
  print(f'cluster_lib: {len(linked)} jars of the job runtime in {sys.argv[2]}')
