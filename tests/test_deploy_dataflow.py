"""The job builds for Dataflow, offline: DataflowRunner with --dry_run constructs the whole
job (no Google account, nothing submitted) and it holds the expanded Kafka read.

Needs the `dataflow` extra (apache-beam[gcp]) and the KafkaIO expansion service, here a
second instance with the DOCKER environment, as a Dataflow deployment runs it
(docs/deploying.md): Dataflow runs only Docker environments.
"""

import struct

import pytest

from runners.services import Services

pytestmark = pytest.mark.e2e

EXPANSION_PORT = '8098'
SDK_IMAGE = 'europe-docker.pkg.dev/example-project/anomaly/anomaly:test'
READ = 'ReadSensorRecords/ReadFromKafka/KafkaIO.Read'


@pytest.fixture(scope='module')
def docker_expansion_service():
  started = Services()
  try:
    started.ensure('expansion_service.sh', env={
        'EXPANSION_PORT': EXPANSION_PORT, 'EXPANSION_ENVIRONMENT': 'DOCKER'})
    yield f'localhost:{EXPANSION_PORT}'
  finally:
    started.stop_started()


def unsnappy(data: bytes) -> bytes:
  """Decompresses Java's snappy stream (SnappyOutputStream: an 8-byte magic, two ints, then
  [int32 length][raw snappy block]...), the format of Beam's serialized Java objects."""
  import pyarrow  # pylint: disable=import-outside-toplevel
  assert data[:8] == b'\x82SNAPPY\x00', data[:8]
  codec, out, pos = pyarrow.Codec('snappy'), [], 16
  while pos < len(data):
    (length,) = struct.unpack('>i', data[pos:pos + 4])
    block = data[pos + 4:pos + 4 + length]
    pos += 4 + length
    size, shift = 0, 0
    for byte in block:  # the block starts with its uncompressed size, a varint
      size |= (byte & 0x7f) << shift
      shift += 7
      if byte < 0x80:
        break
    out.append(codec.decompress(block, decompressed_size=size).to_pybytes())
  return b''.join(out)


def test_dataflow_dry_run_holds_the_expanded_kafka_read(docker_expansion_service):
  pytest.importorskip('apitools', reason="DataflowRunner needs: pip install -e '.[dataflow]'")
  from apache_beam.portability import common_urns  # pylint: disable=import-outside-toplevel
  from apache_beam.portability.api import beam_runner_api_pb2  # pylint: disable=import-outside-toplevel
  from pipeline.main import make_pipeline  # pylint: disable=import-outside-toplevel

  pipeline = make_pipeline([
      '--runner=DataflowRunner', '--dry_run=True',
      '--project=example-project', '--region=europe-west1',
      '--temp_location=gs://example-bucket/tmp', '--streaming',
      f'--sdk_container_image={SDK_IMAGE}',
      '--bootstrap_servers=broker-1.example:9093',
      '--readings_topic=plant-readings',
      f'--expansion_service={docker_expansion_service}',
  ])
  job = pipeline.run().job  # DataflowRunner's dry run returns the built apiclient.Job
  assert str(job.proto.type) == 'JOB_TYPE_STREAMING'
  proto = job.proto_pipeline  # what Dataflow would receive (Runner v2)
  transforms = {t.unique_name: t for t in proto.components.transforms.values()}

  docker_images = {}
  for env_id, env in proto.components.environments.items():
    assert env.urn == common_urns.environments.DOCKER.urn, f'{env_id}: {env.urn}'
    docker_images[env_id] = beam_runner_api_pb2.DockerPayload.FromString(
        env.payload).container_image
  assert SDK_IMAGE in docker_images.values()

  # The Java read, expanded: KafkaIO.Read down to its UnboundedSource, whose serialized
  # source carries the consumer settings and our event-time policy.
  assert READ in transforms, sorted(n for n in transforms if 'Kafka' in n)
  [source_read] = [t for n, t in transforms.items() if n.startswith(READ + '/')
                   and t.spec.urn == common_urns.deprecated_primitives.READ.urn]
  source = beam_runner_api_pb2.ReadPayload.FromString(source_read.spec.payload).source
  assert source.urn == 'beam:java:unboundedsource:v1'
  serialized = unsnappy(source.payload)
  for expected in (b'IdleAwareCreateTimePolicy', b'broker-1.example:9093', b'plant-readings'):
    assert expected in serialized, expected

  # The Java steps run in Beam's Java SDK image, with the expansion service's classpath
  # (including the event-time read's jar) staged as artifacts.
  java_envs = {transforms[n].environment_id for n in transforms
               if n.startswith('ReadSensorRecords/ReadFromKafka/') and transforms[n].environment_id}
  assert len(java_envs) == 1, java_envs
  [java_env] = java_envs
  assert docker_images[java_env] == 'apache/beam_java17_sdk:2.70.0'
  staged = [beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(a.role_payload).staged_name
            for a in proto.components.environments[java_env].dependencies]
  assert any(name.startswith('kafka-event-time-') for name in staged), staged[:10]

  writes = [n for n in transforms if n.endswith('/WriteToKafka/KafkaIO.WriteRecords')]
  assert len(writes) == 4, writes
