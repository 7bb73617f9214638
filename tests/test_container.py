"""The custom SDK container: its base matches the pinned Beam, and the build command stops
cleanly where no Docker engine runs."""

import ast
import os
import re
import socket
import subprocess
import sys

import pytest

from runners import container

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pinned_beam_version() -> str:
  """BEAM_VERSION as assigned in setup.py."""
  with open(os.path.join(ROOT, 'setup.py'), encoding='utf-8') as handle:
    tree = ast.parse(handle.read())
  for node in tree.body:
    if isinstance(node, ast.Assign) and any(
        isinstance(t, ast.Name) and t.id == 'BEAM_VERSION' for t in node.targets):
      return ast.literal_eval(node.value)
  raise AssertionError('setup.py assigns no BEAM_VERSION')


def dockerfile_lines():
  with open(os.path.join(ROOT, 'Dockerfile'), encoding='utf-8') as handle:
    return [line.strip() for line in handle if line.strip() and not line.startswith('#')]


def test_base_image_is_the_pinned_beam_sdk():
  froms = [line.split()[1] for line in dockerfile_lines() if line.upper().startswith('FROM ')]
  assert froms == [f'apache/beam_python3.11_sdk:{pinned_beam_version()}']


def test_dockerfile_copies_only_the_package_and_checks_dependencies():
  lines = dockerfile_lines()
  sources = [line.split()[1:-1] for line in lines if line.upper().startswith('COPY ')]
  assert sorted(s for group in sources for s in group) == ['pipeline/', 'setup.py', 'transforms/']
  assert lines[-1].endswith('&& pip check'), lines[-1]


def test_dockerignore_excludes_everything_but_the_package():
  with open(os.path.join(ROOT, '.dockerignore'), encoding='utf-8') as handle:
    rules = [line.strip() for line in handle if line.strip() and not line.startswith('#')]
  assert rules[0] == '*'
  assert {r for r in rules if r.startswith('!')} == {'!setup.py', '!pipeline/', '!transforms/'}


@pytest.mark.parametrize('image, expected', [
    ('anomaly:1', ('anomaly', '1')),
    ('localhost:5000/team/anomaly:2.70.0-a', ('localhost:5000/team/anomaly', '2.70.0-a')),
])
def test_split_image(image, expected):
  assert container.split_image(image) == expected


@pytest.mark.parametrize('image', ['anomaly', 'localhost:5000/anomaly', ':1'])
def test_split_image_needs_a_tag(image):
  with pytest.raises(container.ContainerError, match='REPOSITORY:TAG'):
    container.split_image(image)


@pytest.mark.parametrize('command', ['build', 'push'])
def test_without_an_engine_it_stops_with_one_line_naming_docker_host(tmp_path, command):
  # A socket file nobody listens on: connecting is refused, as with a stopped engine.
  path = str(tmp_path / 'docker.sock')
  unused = socket.socket(socket.AF_UNIX)
  unused.bind(path)
  try:
    env = dict(os.environ, DOCKER_HOST=f'unix://{path}')
    result = subprocess.run(
        [sys.executable, '-m', 'runners.container', command, '--image', 'example/anomaly:1'],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)
  finally:
    unused.close()
  assert result.returncode == 1
  assert result.stdout == ''
  lines = result.stderr.splitlines()
  assert len(lines) == 1, result.stderr
  assert re.match(
      rf'container: no Docker engine reachable at unix://{re.escape(path)} \(DOCKER_HOST; ',
      lines[0]), lines[0]
