"""The cluster's lib folder (runners/cluster_lib.py) and the option that stops jobs shipping jars."""

import os
import zipfile

from runners.cluster_lib import assemble, cluster_provides, manifest_classpath
from runners.flink_options import NO_JARS_TO_STAGE, flink_args


def make_jar(path, names, manifest=None):
  with zipfile.ZipFile(path, 'w') as jar:
    if manifest is not None:
      jar.writestr('META-INF/MANIFEST.MF', manifest)
    for name in names:
      jar.writestr(name, b'')
  return str(path)


def folded(header: str) -> str:
  """A manifest header folded as the jar tool does: 72-byte lines, continuations indented."""
  lines, rest = [header[:72]], header[72:]
  while rest:
    lines.append(' ' + rest[:71])
    rest = rest[71:]
  return '\r\n'.join(lines) + '\r\n'


def test_manifest_classpath_unfolds_long_lines_and_keeps_the_order(tmp_path):
  names = [f'some-rather-long-library-name-{i}-1.0.0.jar' for i in range(5)]
  launcher = make_jar(tmp_path / 'launcher.jar', [],
                      'Manifest-Version: 1.0\r\n' + folded('Class-Path: ' + ' '.join(names))
                      + 'Main-Class: x.Main\r\n')
  assert manifest_classpath(launcher) == [str(tmp_path / n) for n in names]


def test_jars_of_flink_and_logging_only_are_what_the_cluster_provides(tmp_path):
  assert cluster_provides(make_jar(tmp_path / 'a.jar', ['org/apache/flink/core/A.class',
                                                        'META-INF/x/B.class']))
  assert cluster_provides(make_jar(tmp_path / 'b.jar', ['org/slf4j/impl/S.class']))
  # One class outside those packages is enough to keep a jar (our corrected Beam classes).
  assert not cluster_provides(make_jar(tmp_path / 'c.jar', ['org/apache/flink/A.class',
                                                            'org/apache/beam/B.class']))
  assert not cluster_provides(make_jar(tmp_path / 'd.jar', ['README.txt']))


def test_assemble_links_flink_lib_then_the_runtime_in_classpath_order(tmp_path):
  flink_lib = tmp_path / 'flink-lib'
  flink_lib.mkdir()
  make_jar(flink_lib / 'flink-dist-1.19.3.jar', ['org/apache/flink/D.class'])
  make_jar(flink_lib / 'log4j-api-2.17.1.jar', ['org/apache/logging/L.class'])
  jars = tmp_path / 'jars'
  jars.mkdir()
  make_jar(jars / 'zz-fixes.jar', ['org/apache/beam/runners/core/SideInputHandler.class'])
  make_jar(jars / 'flink-core-1.19.0.jar', ['org/apache/flink/C.class'])
  make_jar(jars / 'slf4j-simple.jar', ['org/slf4j/simple/S.class'])
  make_jar(jars / 'beam-runners-core.jar', ['org/apache/beam/runners/core/SideInputHandler.class'])
  launcher = make_jar(jars / 'launcher.jar', ['local/anomaly/flink/JobServerMain.class'],
                      'Manifest-Version: 1.0\r\nClass-Path: zz-fixes.jar flink-core-1.19.0.jar '
                      'slf4j-simple.jar beam-runners-core.jar\r\n')
  out = tmp_path / 'lib'
  out.mkdir()
  (out / 'stale.jar').write_bytes(b'')  # from an earlier start: gone afterwards

  runtime = assemble(str(flink_lib), launcher, str(out))

  # Not the launcher: its manifest would bring back every jar left out.
  assert runtime == [str(jars / 'zz-fixes.jar'), str(jars / 'beam-runners-core.jar')]
  # Flink lists its lib sorted: the fixes must still come before Beam's own class.
  assert sorted(os.listdir(out)) == [
      'beam-000-zz-fixes.jar', 'beam-001-beam-runners-core.jar',
      'flink-dist-1.19.3.jar', 'log4j-api-2.17.1.jar']
  # The same files, not symbolic links (whose targets' folder the JVM would search).
  assert os.path.samefile(out / 'beam-000-zz-fixes.jar', jars / 'zz-fixes.jar')
  assert os.path.samefile(out / 'flink-dist-1.19.3.jar', flink_lib / 'flink-dist-1.19.3.jar')
  assert not any(os.path.islink(out / name) for name in os.listdir(out))


def test_jobs_on_the_project_cluster_ship_no_jars(monkeypatch):
  monkeypatch.setattr('runners.flink_options.job_server_jar', lambda: '/jar')
  assert NO_JARS_TO_STAGE in flink_args('cluster', 'j')
  assert NO_JARS_TO_STAGE not in flink_args('cluster', 'j', jars_on_cluster=False)
  assert NO_JARS_TO_STAGE not in flink_args('embedded', 'j')
