"""Kafka source and sinks of the streaming job: ReadSensorRecords and WriteToTopics.

Both are cross-language KafkaIO transforms, expanded by the Java expansion service at
--expansion_service (runners/expansion_service.sh starts one with the EMBEDDED
environment, so the Java side runs inside the Flink JVM: no Docker).

Event time and watermarks: by default the read is our own KafkaIO variant (Java,
runners/java/kafka-event-time, served by our expansion service) whose event time is the
record timestamp, like KafkaIO's CreateTime policy, but whose watermark a partition without
records cannot stall: KafkaIO's CreateTime policy only advances an idle partition once it
has delivered a record, so a partition that stays empty holds every window back forever
(the idle-partition trap, apache/beam#31085). The parser then stamps each reading with its
own `ts`, so windows are in the reading's event time.

That read also packs the records of each bundle into one block (runners/java/kafka-event-time,
RecordBlocks.java), unpacked here (unpack_record_block): one element crossing from Java to
Python per ~1,000 records instead of a schema row per record.
"""

import configparser
import os
import struct
import typing
from typing import Dict, Iterator, List, Mapping, Optional

import apache_beam as beam
from apache_beam.io.kafka import ReadFromKafka, WriteToKafka
from apache_beam.transforms.external import ExternalTransform
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.transforms.window import TimestampedValue

from pipeline.options import InvalidOptionError
from transforms.encode import sensor_key, to_json_line
from transforms.parse import parse_epoch_or_iso_ms
from transforms.records import RawRecord

EVENT_TIME_POLICY = 'EventTime'
# ANOMALY_KAFKA_SSL_TRUSTSTORE_LOCATION=... -> ssl.truststore.location=... (see env_config).
ENV_PREFIX = 'ANOMALY_KAFKA_'
TIMESTAMP_POLICIES = (EVENT_TIME_POLICY, ReadFromKafka.create_time_policy, 'LogAppendTime',
                      ReadFromKafka.processing_time_policy)

# Output of build_pipeline -> the option naming its topic.
TOPIC_OPTIONS = {
    'alerts': 'alerts_topic',
    'window_stats': 'window_stats_topic',
    'dead_letters': 'dead_letters_topic',
    'late': 'late_topic',
}


class KafkaOptions(PipelineOptions):

  @classmethod
  def _add_argparse_args(cls, parser):
    group = parser.add_argument_group('kafka')
    group.add_argument(
        '--bootstrap_servers', default='127.0.0.1:9092',
        help='Kafka bootstrap servers, host:port[,host:port]. Default: 127.0.0.1:9092.')
    group.add_argument(
        '--readings_topic', default='sensor-readings',
        help='Topic of the sensor readings (JSON or CSV records). Default: sensor-readings.')
    group.add_argument(
        '--alerts_topic', default='anomaly-alerts',
        help='Topic the alerts are written to, keyed by sensor_id. Default: anomaly-alerts.')
    group.add_argument(
        '--window_stats_topic', default='window-stats',
        help='Topic of the per-sensor window statistics. Default: window-stats.')
    group.add_argument(
        '--dead_letters_topic', default='dead-letters',
        help='Topic of the unusable records, with original bytes and reason. '
        'Default: dead-letters.')
    group.add_argument(
        '--late_topic', default='late-readings',
        help='Topic of the readings that came later than --allowed_lateness. '
        'Default: late-readings.')
    group.add_argument(
        '--group_id', default='sensor-anomaly-detector',
        help='Kafka consumer group; offsets are committed to it when Flink finalizes '
        'a checkpoint. Default: sensor-anomaly-detector.')
    group.add_argument(
        '--start_offset', choices=('earliest', 'latest'), default='earliest',
        help='Where to start when the group has no committed offset (auto.offset.reset). '
        'Default: earliest.')
    group.add_argument(
        '--start_read_time', default=None,
        help='Read only records from this time on (epoch ms or ISO-8601 with zone), '
        'ignoring committed offsets. Default: from the committed offsets.')
    group.add_argument(
        '--timestamp_policy', choices=TIMESTAMP_POLICIES, default=EVENT_TIME_POLICY,
        help='Watermark of the Kafka read. EventTime: record timestamps, and a caught-up '
        'or empty partition advances to now (needs this project\'s expansion service); '
        'CreateTime, LogAppendTime, ProcessingTime: KafkaIO\'s own policies (CreateTime '
        'stalls while a partition has never had a record). Default: EventTime.')
    group.add_argument(
        '--consumer_config', action='append', default=[],
        help='Extra Kafka consumer setting key=value; repeatable. Default: none.')
    group.add_argument(
        '--producer_config', action='append', default=[],
        help='Extra Kafka producer setting key=value; repeatable. Default: none.')
    group.add_argument(
        '--kafka_config_file', default=None,
        help='Properties file (key=value lines) applied to consumer and producer, for '
        'security settings that must not appear on a command line; variables '
        f'{ENV_PREFIX}<KEY> override it (docs/deploying.md). Default: none.')
    group.add_argument(
        '--expansion_service', default='localhost:8097',
        help='host:port of the KafkaIO expansion service. Default: localhost:8097.')
    group.add_argument(
        '--max_num_records', type=int, default=None,
        help='Stop after this many records (a bounded read, for tests and replays). '
        'Default: unbounded.')


def parse_key_values(option: str, entries: List[str]) -> Dict[str, str]:
  config = {}
  for entry in entries:
    key, sep, value = entry.partition('=')
    if not sep or not key.strip():
      raise InvalidOptionError(option, f'expected key=value, got {entry!r}')
    config[key.strip()] = value.strip()
  return config


def read_properties_file(path: str) -> Dict[str, str]:
  """A Java-style properties file (key=value, # comments) as a dict."""
  parser = configparser.ConfigParser(interpolation=None, delimiters=('=',), comment_prefixes=('#', '!'))
  parser.optionxform = str  # Kafka keys are case sensitive
  try:
    with open(path, encoding='utf-8') as handle:
      parser.read_string('[kafka]\n' + handle.read())
  except configparser.ParsingError as error:
    # Not str(error): it quotes the offending lines, which may hold a secret. Line numbers
    # count the '[kafka]' header added above.
    lines = ', '.join(str(number - 1) for number, _ in error.errors)
    raise InvalidOptionError(
        'kafka_config_file', f'cannot read {path}: no key=value on line(s) {lines}') from None
  except (OSError, configparser.Error) as error:
    raise InvalidOptionError('kafka_config_file', f'cannot read {path}: {error}') from None
  return dict(parser['kafka'])


def env_config(environ: Mapping[str, str] = os.environ) -> Dict[str, str]:
  """Kafka client settings from ANOMALY_KAFKA_<KEY> variables, for secrets that must not
  appear on a command line: the key is lower-cased with '_' as '.', which spells every Kafka
  client setting (ANOMALY_KAFKA_SASL_JAAS_CONFIG -> sasl.jaas.config)."""
  return {name[len(ENV_PREFIX):].lower().replace('_', '.'): value
          for name, value in environ.items()
          if name.startswith(ENV_PREFIX) and len(name) > len(ENV_PREFIX)}


def validate_kafka(options: PipelineOptions) -> KafkaOptions:
  opts = options.view_as(KafkaOptions)
  for name in ('bootstrap_servers', 'readings_topic', 'group_id', 'expansion_service',
               *TOPIC_OPTIONS.values()):
    if not (getattr(opts, name) or '').strip():
      raise InvalidOptionError(name, 'must not be empty')
  if opts.start_read_time is not None:
    start_read_time_ms(opts)
  if opts.max_num_records is not None and opts.max_num_records < 1:
    raise InvalidOptionError('max_num_records', 'must be >= 1')
  consumer_config(opts)
  producer_config(opts)
  return opts


def start_read_time_ms(opts: KafkaOptions):
  if opts.start_read_time is None:
    return None
  try:
    return parse_epoch_or_iso_ms(opts.start_read_time)
  except ValueError as error:
    raise InvalidOptionError('start_read_time', f'not epoch ms or ISO-8601 with zone: {error}') from None


def _shared_config(opts: KafkaOptions) -> Dict[str, str]:
  """--bootstrap_servers, then --kafka_config_file, then ANOMALY_KAFKA_* (later wins)."""
  config = {'bootstrap.servers': opts.bootstrap_servers}
  if opts.kafka_config_file:
    config.update(read_properties_file(opts.kafka_config_file))
  config.update(env_config())
  return config


def consumer_config(opts: KafkaOptions) -> Dict[str, str]:
  config = _shared_config(opts)
  config.update({'group.id': opts.group_id, 'auto.offset.reset': opts.start_offset})
  config.update(parse_key_values('consumer_config', opts.consumer_config))
  return config


# The producer's request limit for dead letters: one carries its record's bytes in base64,
# 4/3 of a readings record that may itself be near Kafka's 1 MB default. The dead-letters
# topic must accept as much (max.message.bytes; runners/kafka.sh sets the broker's default).
DEAD_LETTER_MAX_REQUEST_BYTES = 4 * 1024 * 1024


def producer_config(opts: KafkaOptions, defaults: Optional[Dict[str, str]] = None) -> Dict[str, str]:
  """Shared settings, then `defaults` for this sink, then what the user gave."""
  config = _shared_config(opts)
  config.update(defaults or {})
  config.update(parse_key_values('producer_config', opts.producer_config))
  return config


def row_to_raw_record(row) -> RawRecord:
  """A KafkaIO record with metadata (a schema Row) -> RawRecord."""
  return RawRecord(
      payload=bytes(row.value or b''),
      timestamp_ms=row.timestamp,
      key=bytes(row.key) if row.key is not None else None,
      topic=row.topic,
      partition=row.partition,
      offset=row.offset)


def number_external_transforms_afresh() -> None:
  """Names the next pipeline's cross-language transforms as a fresh process would.

  Beam prefixes the ids inside each expanded KafkaIO transform with a process-wide counter
  (external_<n>), and the Flink runner keeps the outputs a step buffered at a savepoint
  under the index of each output's id in sorted order. A job resumed from a savepoint by a
  process that had already built another pipeline (a test, a scheduler's long-lived worker)
  got other ids, so a restored buffer went to the wrong output: dead letters reached the
  late gate ("ClassCastException: [B cannot be cast to Long"), and the job restarted without
  end. Restarting the count makes the ids a function of the pipeline alone.
  """
  ExternalTransform._namespace_counter = 0  # pylint: disable=protected-access


_LENGTH = struct.Struct('>i')
_RECORD_HEAD = struct.Struct('>iqq')  # partition, offset, timestamp ms


def _bytes_at(block: bytes, pos: int):
  """(the length-prefixed bytes at pos, or None for length -1; the position after them)."""
  (length,) = _LENGTH.unpack_from(block, pos)
  pos += 4
  if length < 0:
    return None, pos
  return block[pos:pos + length], pos + length


def unpack_record_block(block: bytes) -> Iterator[RawRecord]:
  """A block of Kafka records (layout in RecordBlocks.java) -> its RawRecords, in order."""
  topic, pos = _bytes_at(block, 0)
  topic = topic.decode('utf-8')
  end = len(block)
  while pos < end:
    partition, offset, timestamp_ms = _RECORD_HEAD.unpack_from(block, pos)
    key, pos = _bytes_at(block, pos + _RECORD_HEAD.size)
    value, pos = _bytes_at(block, pos)
    yield RawRecord(value or b'', timestamp_ms, key, topic, partition, offset)


def _unpack_timestamped(block: bytes):
  for record in unpack_record_block(block):
    yield TimestampedValue(record, record.timestamp_ms / 1000.0)


class _ReadFromKafkaEventTime(ReadFromKafka):
  """ReadFromKafka's payload, expanded to runners/java/kafka-event-time's read: record
  blocks (bytes) instead of rows."""
  URN_WITH_METADATA = 'beam:transform:local.anomaly:kafka_read_event_time_blocks:v1'


class ReadSensorRecords(beam.PTransform):
  """Kafka readings topic -> RawRecords (bytes untouched, with topic/partition/offset/time),
  each timestamped with its Kafka timestamp.

  blocks=True: with the event-time policy the output is the record blocks themselves
  (bytes, each stamped with its earliest record's timestamp), for a consumer that unpacks
  them where it reads them; `unpack` is then unpack_record_block (None when the output is
  RawRecords)."""

  def __init__(self, opts: KafkaOptions, blocks: bool = False):
    super().__init__()
    self._opts = opts
    self.unpack = (unpack_record_block
                   if blocks and opts.timestamp_policy == EVENT_TIME_POLICY else None)

  def expand(self, pbegin):
    opts = self._opts
    event_time = opts.timestamp_policy == EVENT_TIME_POLICY
    read = _ReadFromKafkaEventTime if event_time else ReadFromKafka
    records = (
        pbegin
        | 'ReadFromKafka' >> read(
            consumer_config=consumer_config(opts),
            topics=[opts.readings_topic],
            with_metadata=True,
            # Offsets are committed to the group only once a checkpoint holding them is
            # complete, so a restarted job resumes where the last checkpoint was.
            commit_offset_in_finalize=True,
            timestamp_policy=(
                ReadFromKafka.create_time_policy if event_time else opts.timestamp_policy),
            max_num_records=opts.max_num_records,
            start_read_time=start_read_time_ms(opts),
            expansion_service=opts.expansion_service))
    if self.unpack is not None:
      return records
    if event_time:
      return records | 'UnpackRecordBlocks' >> beam.FlatMap(_unpack_timestamped)
    return records | 'ToRawRecord' >> beam.Map(row_to_raw_record)


class WriteToTopic(beam.PTransform):
  """Elements -> JSON records keyed by sensor_id on one topic."""

  def __init__(self, opts: KafkaOptions, topic: str,
               producer_defaults: Optional[Dict[str, str]] = None):
    super().__init__()
    self._opts = opts
    self._topic = topic
    self._producer_defaults = producer_defaults

  def expand(self, elements):
    return (
        elements
        | 'ToKeyedJson' >> beam.Map(
            lambda e: (sensor_key(e), to_json_line(e).encode('utf-8'))).with_output_types(
                typing.Tuple[bytes, bytes])
        | 'WriteToKafka' >> WriteToKafka(
            producer_config=producer_config(self._opts, self._producer_defaults),
            topic=self._topic,
            expansion_service=self._opts.expansion_service))


def write_outputs(outputs: Dict[str, beam.PCollection], opts: KafkaOptions) -> None:
  """Writes every output of build_pipeline to its topic."""
  for name, option in TOPIC_OPTIONS.items():
    defaults = ({'max.request.size': str(DEAD_LETTER_MAX_REQUEST_BYTES)}
                if name == 'dead_letters' else None)
    outputs[name] | f'Write_{name}' >> WriteToTopic(opts, getattr(opts, option), defaults)
