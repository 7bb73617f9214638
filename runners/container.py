"""Builds and pushes the job's custom Beam SDK container (the Dockerfile) with the Docker SDK.

  python -m runners.container build --image REGISTRY/anomaly:TAG [--push]
  python -m runners.container push --image REGISTRY/anomaly:TAG

Needs the `deploy` extra (pip install -e '.[deploy]') and a Docker engine, found like the
docker CLI finds it: DOCKER_HOST (e.g. unix:///run/user/1000/docker.sock or
tcp://host:2376 with DOCKER_TLS_VERIFY/DOCKER_CERT_PATH), else unix:///var/run/docker.sock.
Push uses the credentials of `docker login` (~/.docker/config.json). Without an engine it
stops with one line saying where it looked; the Dockerfile then builds as is with any other
builder (Cloud Build, kaniko, buildah).
"""

import argparse
import os
import sys
from typing import Iterable, Optional, Sequence, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_SOCKET = 'unix:///var/run/docker.sock'


class ContainerError(Exception):
  """A failure with a one-line explanation for the user."""


def engine_address() -> str:
  return os.environ.get('DOCKER_HOST') or DEFAULT_SOCKET


def docker_client():
  """A connected docker.DockerClient, or ContainerError naming where no engine answered."""
  try:
    import docker  # pylint: disable=import-outside-toplevel
  except ImportError:
    raise ContainerError(
        "the Python docker SDK is missing: pip install -e '.[deploy]'") from None
  try:
    client = docker.from_env()
    client.ping()
  except docker.errors.DockerException as error:
    source = 'DOCKER_HOST' if os.environ.get('DOCKER_HOST') else 'the default socket'
    reason = str(error).splitlines()[0] if str(error) else type(error).__name__
    raise ContainerError(
        f'no Docker engine reachable at {engine_address()} ({source}; set DOCKER_HOST to '
        f'a running engine): {reason}') from None
  return client


def split_image(image: str) -> Tuple[str, str]:
  """'registry:5000/repo/name:tag' -> ('registry:5000/repo/name', 'tag'); tag is required."""
  repository, sep, tag = image.rpartition(':')
  if not sep or not repository or '/' in tag:
    raise ContainerError(f'--image must be REPOSITORY:TAG, got {image!r}')
  return repository, tag


def _follow(stream: Iterable[dict], what: str) -> None:
  """Prints the engine's progress; raises ContainerError on the first error it reports."""
  for chunk in stream:
    if 'error' in chunk:
      raise ContainerError(f"{what} failed: {chunk['error'].strip()}")
    line = chunk.get('stream') or chunk.get('status')
    if line and line.strip():
      progress = chunk.get('progress')
      print(f'{line.rstrip()} {progress}' if progress else line.rstrip(), file=sys.stderr)


def build(client, image: str, pull: bool = True) -> None:
  split_image(image)
  _follow(client.api.build(path=ROOT, dockerfile='Dockerfile', tag=image, rm=True,
                           pull=pull, decode=True), f'docker build of {image}')
  print(f'built {image}', file=sys.stderr)


def push(client, image: str) -> None:
  repository, tag = split_image(image)
  _follow(client.api.push(repository, tag=tag, stream=True, decode=True),
          f'docker push of {image}')
  print(f'pushed {image}', file=sys.stderr)


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('command', choices=('build', 'push'))
  parser.add_argument('--image', required=True,
                      help='REPOSITORY:TAG of the image, e.g. europe-docker.pkg.dev/p/r/anomaly:1')
  parser.add_argument('--push', action='store_true', help='build: push the image afterwards')
  parser.add_argument('--no-pull', dest='pull', action='store_false',
                      help='build: use the local base image instead of pulling it')
  args = parser.parse_args(argv)
  try:
    split_image(args.image)
    client = docker_client()
    if args.command == 'build':
      build(client, args.image, pull=args.pull)
    if args.command == 'push' or args.push:
      push(client, args.image)
  except ContainerError as error:
    print(f'container: {error}', file=sys.stderr)
    return 1
  return 0


if __name__ == '__main__':
  sys.exit(main())
