"""Kafka client settings from --kafka_config_file and ANOMALY_KAFKA_* variables: what wins,
and that secrets stay out of the options and the error messages."""

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.kafka_io import KafkaOptions, consumer_config, env_config, producer_config
from pipeline.options import InvalidOptionError

SECRET = 's3cret-not-for-logs'


@pytest.fixture
def no_kafka_env(monkeypatch):
  for name in list(env_config()):
    monkeypatch.delenv('ANOMALY_KAFKA_' + name.upper().replace('.', '_'))
  return monkeypatch


def kafka_options(*args) -> KafkaOptions:
  return PipelineOptions(list(args)).view_as(KafkaOptions)


def test_env_names_map_to_kafka_keys():
  assert env_config({
      'ANOMALY_KAFKA_SECURITY_PROTOCOL': 'SASL_SSL',
      'ANOMALY_KAFKA_SASL_JAAS_CONFIG': 'jaas',
      'ANOMALY_KAFKA_SSL_TRUSTSTORE_LOCATION': '/etc/kafka/truststore.p12',
      'ANOMALY_KAFKA_': 'ignored: no key',
      'KAFKA_SECURITY_PROTOCOL': 'ignored: no prefix',
  }) == {
      'security.protocol': 'SASL_SSL',
      'sasl.jaas.config': 'jaas',
      'ssl.truststore.location': '/etc/kafka/truststore.p12',
  }


def test_file_then_env_then_command_line(tmp_path, no_kafka_env):
  path = tmp_path / 'client.properties'
  path.write_text('# comment\nsecurity.protocol=SSL\nssl.truststore.type=PKCS12\n'
                  f'ssl.truststore.password={SECRET}\n')
  no_kafka_env.setenv('ANOMALY_KAFKA_SSL_TRUSTSTORE_TYPE', 'JKS')
  opts = kafka_options(f'--kafka_config_file={path}', '--bootstrap_servers=b:9093',
                       '--consumer_config=ssl.truststore.type=PEM', '--group_id=g')
  # 'security.protocol' from the file; the env overrides the file, the flag overrides both.
  assert consumer_config(opts) == {
      'bootstrap.servers': 'b:9093', 'security.protocol': 'SSL',
      'ssl.truststore.password': SECRET, 'ssl.truststore.type': 'PEM',
      'group.id': 'g', 'auto.offset.reset': 'earliest'}
  assert producer_config(opts)['ssl.truststore.type'] == 'JKS'


def test_secrets_from_file_and_env_stay_out_of_the_options(tmp_path, no_kafka_env):
  path = tmp_path / 'client.properties'
  path.write_text(f'ssl.keystore.password={SECRET}\n')
  no_kafka_env.setenv('ANOMALY_KAFKA_SASL_JAAS_CONFIG', f'password="{SECRET}";')
  options = PipelineOptions([f'--kafka_config_file={path}'])
  assert SECRET in str(consumer_config(options.view_as(KafkaOptions)))
  # The options are what runners show and log (and Dataflow displays): only the path.
  assert SECRET not in repr(options.get_all_options())
  assert str(path) in repr(options.get_all_options())


def test_unreadable_line_is_reported_by_number_without_its_content(tmp_path, no_kafka_env):
  path = tmp_path / 'client.properties'
  path.write_text(f'security.protocol=SSL\n{SECRET}\n')
  with pytest.raises(InvalidOptionError) as raised:
    consumer_config(kafka_options(f'--kafka_config_file={path}'))
  assert str(raised.value) == (
      f'--kafka_config_file: cannot read {path}: no key=value on line(s) 2')


def test_missing_file(tmp_path):
  path = tmp_path / 'absent.properties'
  with pytest.raises(InvalidOptionError, match=r'^--kafka_config_file: cannot read .*absent'):
    consumer_config(kafka_options(f'--kafka_config_file={path}'))


def test_a_sinks_defaults_yield_to_the_users_producer_config(no_kafka_env):
  # The dead-letter sink asks for 4 MiB requests; --producer_config still has the last word.
  defaults = {'max.request.size': '4194304'}
  assert producer_config(kafka_options(), defaults)['max.request.size'] == '4194304'
  opts = kafka_options('--producer_config=max.request.size=2097152')
  assert producer_config(opts, defaults)['max.request.size'] == '2097152'
  assert 'max.request.size' not in producer_config(kafka_options())
