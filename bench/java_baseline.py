"""The original Java Flink job (the benchmark's baseline), submitted to Flink or run locally.

The job is runners/java/original-job (built by runners/fetch_jars.sh into
.cache/jars/original-job/): CSV `sensor_id,value` in, processing-time sliding windows,
alerts as JSON on an output topic (Kafka timestamp = when the job sent the alert).

On a Flink cluster, through its REST API (standard library only):

  jid = submit('localhost:8081', program_args('127.0.0.1:9092', 'readings', 'alerts',
                                              window_ms=60_000, slide_ms=10_000))
  ...
  cancel('localhost:8081', jid)

Locally, in a MiniCluster inside one JVM (Flink's lib/ from runners/fetch_flink.sh on the
classpath): subprocess.Popen(local_command(program_args(...), log_file='job.log')).
"""

import glob
import json
import os
import urllib.error
import urllib.request
import uuid
from typing import List, Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JAR_DIR = os.path.join(ROOT, '.cache', 'jars', 'original-job')
FLINK_HOME = os.path.join(ROOT, '.cache', 'flink', 'pyflink')
MAIN_CLASS = 'local.anomaly.original.OriginalJob'


def jar_path() -> str:
  """The shaded job jar; FileNotFoundError (saying how to build it) when there is none."""
  jars = sorted(glob.glob(os.path.join(JAR_DIR, 'original-job-*.jar')))
  if not jars:
    raise FileNotFoundError(f'no original-job jar in {JAR_DIR}: run runners/fetch_jars.sh')
  return jars[-1]


def program_args(bootstrap: str, input_topic: str, output_topic: str,
                 window_ms: int = 10_000, slide_ms: int = 5_000, threshold: float = 50.0,
                 group_id: str = 'original-job', parallelism: Optional[int] = None,
                 start_offset: str = 'earliest') -> List[str]:
  """The job's arguments; the defaults are the original job's (10 s windows every 5 s, 50)."""
  args = ['--bootstrap', bootstrap, '--input-topic', input_topic,
          '--output-topic', output_topic, '--window-ms', str(window_ms),
          '--slide-ms', str(slide_ms), '--threshold', repr(float(threshold)),
          '--group-id', group_id, '--start-offset', start_offset]
  if parallelism is not None:
    args += ['--parallelism', str(parallelism)]
  return args


def _base(rest: str) -> str:
  return rest.rstrip('/') if '://' in rest else f'http://{rest.rstrip("/")}'


def _request(rest: str, method: str, path: str, body: Optional[bytes] = None,
             content_type: str = 'application/json', timeout_s: float = 60.0) -> dict:
  """One REST call; Flink's own error text (its `errors` list) in the exception."""
  request = urllib.request.Request(f'{_base(rest)}{path}', data=body, method=method)
  if body is not None:
    request.add_header('Content-Type', content_type)
  try:
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
      text = response.read()
  except urllib.error.HTTPError as error:
    detail = error.read().decode('utf-8', 'replace')
    raise RuntimeError(f'Flink REST {method} {path}: HTTP {error.code}: {detail}') from error
  return json.loads(text) if text.strip() else {}


def upload_jar(rest: str, jar: str) -> str:
  """POST /jars/upload (multipart, field `jarfile`); returns the jar id Flink gave it."""
  boundary = uuid.uuid4().hex
  with open(jar, 'rb') as handle:
    content = handle.read()
  body = b''.join([
      f'--{boundary}\r\n'.encode(),
      (f'Content-Disposition: form-data; name="jarfile"; '
       f'filename="{os.path.basename(jar)}"\r\n').encode(),
      b'Content-Type: application/x-java-archive\r\n\r\n',
      content,
      f'\r\n--{boundary}--\r\n'.encode(),
  ])
  answer = _request(rest, 'POST', '/jars/upload', body,
                    content_type=f'multipart/form-data; boundary={boundary}')
  if answer.get('status') != 'success':
    raise RuntimeError(f'Flink REST /jars/upload: {answer}')
  return os.path.basename(answer['filename'])  # '<uuid>_original-job-1.0.0.jar'


def run_jar(rest: str, jar_id: str, args: Sequence[str], entry_class: str = MAIN_CLASS) -> str:
  """POST /jars/<id>/run with the program arguments; returns the job id."""
  body = json.dumps({'entryClass': entry_class, 'programArgsList': list(args)}).encode()
  return _request(rest, 'POST', f'/jars/{jar_id}/run', body)['jobid']


def delete_jar(rest: str, jar_id: str) -> None:
  _request(rest, 'DELETE', f'/jars/{jar_id}')


def submit(rest: str, args: Sequence[str], jar: Optional[str] = None) -> str:
  """Uploads the job jar, runs it with args, deletes the upload; returns the job id.

  The submitted job keeps its own copy of the jar (in Flink's blob store), so the upload
  is not needed after the run and would otherwise pile up in the JobManager's web dir.
  """
  jar_id = upload_jar(rest, jar or jar_path())
  try:
    return run_jar(rest, jar_id, args)
  finally:
    delete_jar(rest, jar_id)


def job_state(rest: str, jid: str) -> str:
  """'RUNNING', 'FAILED', 'CANCELED', ... of a job (GET /jobs/<jid>)."""
  return _request(rest, 'GET', f'/jobs/{jid}')['state']


def cancel(rest: str, jid: str) -> None:
  """PATCH /jobs/<jid>?mode=cancel; returns once Flink accepted the request."""
  _request(rest, 'PATCH', f'/jobs/{jid}?mode=cancel')


def java_options(flink_home: str = FLINK_HOME) -> List[str]:
  """The JVM flags Flink runs with (env.java.opts.all of its config.yaml): Java 17 needs
  its --add-opens/--add-exports for Flink's serializers."""
  import yaml  # pylint: disable=import-outside-toplevel  (Beam depends on PyYAML)
  with open(os.path.join(flink_home, 'conf', 'config.yaml'), encoding='utf-8') as handle:
    config = yaml.safe_load(handle) or {}
  opts = config.get('env.java.opts.all')
  if opts is None:
    opts = (((config.get('env') or {}).get('java') or {}).get('opts') or {}).get('all', '')
  return str(opts).split()


def local_command(args: Sequence[str], log_file: str, jar: Optional[str] = None,
                  flink_home: str = FLINK_HOME, java: str = 'java') -> List[str]:
  """A `java` command running the job in a MiniCluster of its own (outside a cluster,
  Flink's getExecutionEnvironment() is a local one), logging at INFO to log_file."""
  lib = os.path.join(flink_home, 'lib')
  if not os.path.isdir(lib):
    raise FileNotFoundError(f'no Flink at {flink_home}: run runners/fetch_flink.sh')
  log_config = os.path.join(flink_home, 'conf', 'log4j.properties')
  return [java, *java_options(flink_home), f'-Dlog4j.configurationFile={log_config}',
          f'-Dlog.file={log_file}', '-cp', f'{jar or jar_path()}:{lib}/*', MAIN_CLASS, *args]
