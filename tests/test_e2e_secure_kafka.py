"""End to end over TLS: the job reads readings from and writes alerts to a broker that the
test starts with an SSL listener and certificates it generates (openssl, keytool).

The client settings come from a --kafka_config_file (protocol, truststore) and the truststore
password from ANOMALY_KAFKA_SSL_TRUSTSTORE_PASSWORD, never from the command line; the
password must not show up in any log line of the run.
"""

import json
import logging
import os
import subprocess
import time
import uuid

import pytest
from kafka import KafkaProducer

from pipeline.main import run
from runners import kafka_topics
from runners.flink_options import flink_args
from runners.services import ROOT, Services
from runners.simulator import generate, produce
from runners.topic_reader import read_topic, wait_for
from tests.e2e_job import DETECTION_ARGS, readings_of
from tests.oracle import expected_alert_ids

pytestmark = pytest.mark.e2e

PLAIN_PORT, SSL_PORT = 19092, 19094  # a broker of its own, beside the project's on 9092
SECRET = f'truststore-{uuid.uuid4().hex}'  # the client-side secret under test


def _run(*command: str, cwd: str) -> None:
  subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True)


def make_certificates(folder: str, keystore_password: str) -> None:
  """ca.pem (a CA), broker.p12 (the broker's key and CA-signed certificate for 127.0.0.1)
  and truststore.p12 (the CA, for Java clients; password SECRET)."""
  _run('openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
       '-subj', '/CN=anomaly-test-ca', '-keyout', 'ca.key', '-out', 'ca.pem', cwd=folder)
  _run('openssl', 'req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost',
       '-keyout', 'broker.key', '-out', 'broker.csr', cwd=folder)
  with open(os.path.join(folder, 'san.cnf'), 'w', encoding='utf-8') as handle:
    handle.write('subjectAltName=IP:127.0.0.1,DNS:localhost\n')
  _run('openssl', 'x509', '-req', '-in', 'broker.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key',
       '-CAcreateserial', '-days', '2', '-extfile', 'san.cnf', '-out', 'broker.pem', cwd=folder)
  _run('openssl', 'pkcs12', '-export', '-in', 'broker.pem', '-inkey', 'broker.key',
       '-certfile', 'ca.pem', '-name', 'broker', '-out', 'broker.p12',
       '-passout', f'pass:{keystore_password}', cwd=folder)
  _run('keytool', '-importcert', '-noprompt', '-alias', 'anomaly-test-ca', '-file', 'ca.pem',
       '-keystore', 'truststore.p12', '-storetype', 'PKCS12', '-storepass', SECRET, cwd=folder)


@pytest.fixture(scope='module')
def tls_broker(tmp_path_factory):
  """{'bootstrap': TLS address, 'plain': PLAINTEXT address, 'dir': certificates}."""
  folder = str(tmp_path_factory.mktemp('tls'))
  keystore_password = uuid.uuid4().hex
  make_certificates(folder, keystore_password)
  broker_env = {
      'KAFKA_PORT': str(PLAIN_PORT), 'KAFKA_SSL_PORT': str(SSL_PORT),
      'KAFKA_SSL_KEYSTORE': os.path.join(folder, 'broker.p12'),
      'KAFKA_SSL_KEYSTORE_PASSWORD': keystore_password,
  }
  started = Services()
  try:
    started.ensure('kafka.sh', env=broker_env)
    assert started.started == ['kafka.sh'], (
        f'a broker on port {PLAIN_PORT} was already running; this test needs its own')
    started.ensure('expansion_service.sh')
    yield {'bootstrap': f'127.0.0.1:{SSL_PORT}', 'plain': f'127.0.0.1:{PLAIN_PORT}',
           'dir': folder}
  finally:
    owned_broker = 'kafka.sh' in started.started
    started.stop_started()
    if owned_broker:
      subprocess.run([os.path.join(ROOT, 'runners', 'kafka.sh'), 'clean'], cwd=ROOT,
                     env=dict(os.environ, **broker_env), check=False, capture_output=True)


def test_reads_and_writes_over_tls(tls_broker, tmp_path, monkeypatch, caplog, capfd):
  caplog.set_level(logging.INFO)  # the job server's output is logged at INFO
  ca_file = os.path.join(tls_broker['dir'], 'ca.pem')
  python_tls = {'security_protocol': 'SSL', 'ssl_cafile': ca_file}
  suffix = uuid.uuid4().hex[:8]
  topics = {name: f'tls-{name}-{suffix}' for name in ('readings', 'alerts', 'stats', 'dead', 'late')}
  admin = kafka_topics.admin(tls_broker['plain'])
  kafka_topics.create(admin, {name: 1 for name in topics.values()})

  # 3 sensors x 300 readings over 30 s of event time ending a minute ago, 3 injected
  # anomalies; the expected alerts come from the plain-Python oracle of the rule.
  start_ms = int(time.time() * 1000) - 90_000
  start_ms -= start_ms % 5000
  records = list(generate(3, 900, 30.0, start_ms, anomalies=3, malformed=0, seed=11))
  expected = expected_alert_ids(readings_of(records), 10_000, 5_000, 50.0)
  assert expected, 'the scenario must produce alerts'
  producer = KafkaProducer(bootstrap_servers=tls_broker['bootstrap'], acks='all', **python_tls)
  try:
    produce(producer, topics['readings'], records, pace=False)
  finally:
    producer.close()

  config_file = tmp_path / 'client.properties'
  config_file.write_text(
      'security.protocol=SSL\n'
      f"ssl.truststore.location={os.path.join(tls_broker['dir'], 'truststore.p12')}\n"
      'ssl.truststore.type=PKCS12\n')
  monkeypatch.setenv('ANOMALY_KAFKA_SSL_TRUSTSTORE_PASSWORD', SECRET)
  job_name = f'e2e-tls-{suffix}'
  argv = flink_args('embedded', job_name, parallelism=1) + DETECTION_ARGS + [
      f"--bootstrap_servers={tls_broker['bootstrap']}",
      f'--kafka_config_file={config_file}',
      f"--readings_topic={topics['readings']}",
      f"--alerts_topic={topics['alerts']}",
      f"--window_stats_topic={topics['stats']}",
      f"--dead_letters_topic={topics['dead']}",
      f"--late_topic={topics['late']}",
      f'--group_id={job_name}',
  ]
  assert not any(SECRET in arg for arg in argv)
  result = None
  try:
    result = run(argv, wait=False)

    def alerts():
      assert result.state not in ('FAILED', 'CANCELLED', 'DONE'), f'job ended: {result.state}'
      found = [json.loads(r.value) for r in read_topic(
          tls_broker['bootstrap'], topics['alerts'], **python_tls)]
      return found if len(found) >= len(expected) else None
    found = wait_for(alerts, 300, f'{len(expected)} alerts on {topics["alerts"]} over TLS')
    assert {a['alert_id'] for a in found} == expected
  finally:
    if result is not None and result.state not in ('FAILED', 'CANCELLED', 'DONE'):
      result.cancel()
    kafka_topics.delete(admin, list(topics.values()))
    admin.close()

  # The job server's and Kafka clients' output reaches us through logging and the
  # captured stdout/stderr; Kafka prints its configs with passwords as [hidden].
  captured = capfd.readouterr()
  assert caplog.records, 'no log records were captured'
  texts = {'logs': caplog.text, 'stdout': captured.out, 'stderr': captured.err}
  # The expansion service receives the settings to build the Java transforms.
  for service in ('expansion-service', f'kafka-{PLAIN_PORT}'):
    with open(os.path.join(ROOT, '.local/logs', f'{service}.log'), errors='replace') as handle:
      texts[f'{service}.log'] = handle.read()
  for where, text in texts.items():
    assert SECRET not in text, f'the truststore password appears in the {where}'
