"""The Parquet archive: alerts, window statistics and dead letters, kept in a data lake.

    python -m pipeline --input_file=readings.jsonl --output_dir=out/ --archive_dir=archive/
    archive_outputs(build_pipeline(records, options), options)   # any entry point

writes, next to the job's other sinks,

    archive/alerts/dt=2026-11-24/hour=05/part-20261124T050000Z-s000-3f9a0c1b2d4e.parquet
    archive/window_stats/dt=.../hour=.../...
    archive/dead_letters/dt=.../hour=.../...

Every output has an explicit schema (SCHEMAS below): typed columns, times as
timestamp[ms, UTC]. A row's event time picks its folder (alerts: the reading's
`ts`; statistics: `window_end`; dead letters: the source record's timestamp)
and, unless the element's own timestamp is later, its file window:
FixedWindows of --archive_period seconds, with late panes for as long as the
pipeline itself accepts late data.

Why not fileio.WriteToFiles: in Beam 2.70 it names files by window and by the
position of a temporary file in a grouped list, and gives every late pane of a
window the same names as its first (its unsharded writer passes pane=None), so
a late pane or a replay can overwrite files with other rows. Here each pane of
each (folder, shard) group is written by one call: to a dot-prefixed temporary
file in the final folder, then renamed to a name made of the window, the shard
and a digest of the rows' keys. Readers never see a partial file (dot and
underscore names are skipped by pyarrow.dataset, Spark and Hive); a retry or a
replay of the same rows rewrites the same file; a replay that groups rows
differently adds files whose rows repeat earlier ones, with the same key
(alert_id for alerts), which the archive tool's --dedupe drops. docs/archive.md
has the details.
"""

import hashlib
import json
import logging
import os
import time
import uuid
import zlib
from datetime import datetime, timezone
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Tuple

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import BeamIOError, CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.fileio import FileSink
from apache_beam.io.localfilesystem import LocalFileSystem
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.transforms import trigger, window
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import MIN_TIMESTAMP, Timestamp

from pipeline.options import InvalidOptionError, validate
from transforms.baseline import SensorWindowStats
from transforms.parse import METRICS_NAMESPACE, parse_epoch_or_iso_ms
from transforms.records import DeadLetter

logger = logging.getLogger(__name__)

TIMESTAMP = pa.timestamp('ms', tz='UTC')
SCHEMA_VERSION = '1'


def _schema(name: str, fields: List[pa.Field]) -> pa.Schema:
  return pa.schema(fields, metadata={'archive.output': name, 'archive.schema_version': SCHEMA_VERSION})


ALERTS_SCHEMA = _schema('alerts', [
    pa.field('alert_id', pa.string(), nullable=False),
    pa.field('sensor_id', pa.string(), nullable=False),
    pa.field('ts', TIMESTAMP, nullable=False),
    pa.field('value', pa.float64()),
    pa.field('window_start', TIMESTAMP),
    pa.field('window_end', TIMESTAMP),
    pa.field('window_mean', pa.float64()),
    pa.field('window_stddev', pa.float64()),
    pa.field('window_count', pa.int64()),
    pa.field('deviation', pa.float64()),
    pa.field('score', pa.float64()),
    pa.field('rule', pa.string()),
    pa.field('threshold', pa.float64()),
    pa.field('detected_at', TIMESTAMP),
    pa.field('reading', pa.string()),  # the reading's extra fields, a JSON object
    pa.field('extra', pa.string()),    # keys without a column, a JSON object (see row_from_dict)
])

WINDOW_STATS_SCHEMA = _schema('window_stats', [
    pa.field('sensor_id', pa.string(), nullable=False),
    pa.field('window_start', TIMESTAMP, nullable=False),
    pa.field('window_end', TIMESTAMP, nullable=False),
    pa.field('count', pa.int64()),
    pa.field('mean', pa.float64()),
    pa.field('variance', pa.float64()),
    pa.field('stddev', pa.float64()),
    pa.field('min', pa.float64()),
    pa.field('max', pa.float64()),
    pa.field('pane', pa.string()),  # ON_TIME, or LATE for an update by late readings
    pa.field('extra', pa.string()),
])

DEAD_LETTERS_SCHEMA = _schema('dead_letters', [
    pa.field('ts', TIMESTAMP, nullable=False),  # source timestamp, else when the archive got it
    pa.field('reason', pa.string(), nullable=False),
    pa.field('detail', pa.string()),
    pa.field('payload', pa.binary(), nullable=False),  # the original bytes
    pa.field('source_topic', pa.string()),
    pa.field('source_partition', pa.int32()),
    pa.field('source_offset', pa.int64()),
    pa.field('source_timestamp', TIMESTAMP),
    pa.field('source_key', pa.binary()),
])


def _to_ms(value: Any) -> Optional[int]:
  """ISO-8601 with zone (the JSON encoding's times) or epoch ms -> epoch ms."""
  if value is None or isinstance(value, int):
    return value
  return parse_epoch_or_iso_ms(value)


def row_from_dict(record: Dict[str, Any], schema: pa.Schema) -> Dict[str, Any]:
  """A JSON-encoded output (transforms.encode) -> a row of `schema`.

  Times become epoch ms; dicts and lists in string columns become JSON text.
  The rule for keys without a column (fields that a later version of the
  detector adds): they are kept, as one JSON object with sorted keys, in the
  `extra` column, so the schema stays fixed and nothing is dropped; a field
  that deserves a column gets one in the schema, by name, with its type.
  A missing key is null; a missing non-nullable one raises ValueError.
  """
  row = {}
  for field in schema:
    if field.name == 'extra':
      continue
    value = record.get(field.name)
    if value is None and not field.nullable:
      # pyarrow would store the null anyway; a record without its key is a bug upstream.
      raise ValueError(f'{schema.metadata[b"archive.output"].decode()} without {field.name}: {record!r}')
    if field.type == TIMESTAMP:
      value = _to_ms(value)
    elif field.type == pa.string() and isinstance(value, (dict, list)):
      value = json.dumps(value, sort_keys=True)
    row[field.name] = value
  extra = {k: v for k, v in record.items() if k not in row}
  row['extra'] = json.dumps(extra, sort_keys=True) if extra else None
  return row


def alert_row(alert: Dict[str, Any]) -> Dict[str, Any]:
  return row_from_dict(alert, ALERTS_SCHEMA)


def window_stats_row(stats: SensorWindowStats) -> Dict[str, Any]:
  return row_from_dict(stats.to_json_dict(), WINDOW_STATS_SCHEMA)


def dead_letter_row(dead: DeadLetter, received_ms: int) -> Dict[str, Any]:
  """received_ms: when the record entered the job, used when the source gave no timestamp."""
  record = dead.record
  return {
      'ts': record.timestamp_ms if record.timestamp_ms is not None else received_ms,
      'reason': dead.reason,
      'detail': dead.detail,
      'payload': record.payload,
      'source_topic': record.topic,
      'source_partition': record.partition,
      'source_offset': record.offset,
      'source_timestamp': record.timestamp_ms,
      'source_key': record.key,
  }


class ArchivedOutput(NamedTuple):
  """How one output of build_pipeline is archived."""
  name: str
  schema: pa.Schema
  time_column: str               # the event time that picks the folder and the file window
  key_columns: Tuple[str, ...]   # what makes two rows the same row (empty: every column)


ARCHIVED_OUTPUTS = {
    'alerts': ArchivedOutput('alerts', ALERTS_SCHEMA, 'ts', ('alert_id',)),
    'window_stats': ArchivedOutput('window_stats', WINDOW_STATS_SCHEMA, 'window_end', ()),
    'dead_letters': ArchivedOutput('dead_letters', DEAD_LETTERS_SCHEMA, 'ts', ()),
}
SCHEMAS = {name: spec.schema for name, spec in ARCHIVED_OUTPUTS.items()}


def key_columns(output: str) -> List[str]:
  spec = ARCHIVED_OUTPUTS[output]
  return list(spec.key_columns) or spec.schema.names


def row_key(row: Dict[str, Any], output: str) -> str:
  """What identifies a row (its alert_id for alerts), as stable text."""
  return repr(tuple(row[k] for k in key_columns(output)))


def partition_dirs(ts_ms: int) -> Tuple[str, str]:
  """('dt=YYYY-MM-DD', 'hour=HH') of an event time, in UTC."""
  moment = datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc)
  return moment.strftime('dt=%Y-%m-%d'), moment.strftime('hour=%H')


def file_name(window_start_ms: int, shard: int, rows: Iterable[Dict[str, Any]], output: str) -> str:
  """A function of the file's window, shard and row keys only: the same rows, the same name."""
  keys = sorted(row_key(row, output) for row in rows)
  digest = hashlib.sha256('\n'.join(keys).encode('utf-8')).hexdigest()[:12]
  start = datetime.fromtimestamp(window_start_ms / 1000, tz=timezone.utc)
  return f'part-{start:%Y%m%dT%H%M%S}Z-s{shard:03d}-{digest}.parquet'


class ParquetSink(FileSink):
  """Rows (dicts of one schema) -> one Parquet file, written whole by flush().

  A FileSink, so it also fits fileio.WriteToFiles; flush() ends the file, as
  WriteToFiles calls it once, before closing the handle.
  """

  def __init__(self, schema: pa.Schema):
    self._schema = schema
    self._fh = None
    self._rows: List[Dict[str, Any]] = []

  def create_metadata(self, destination, full_file_name):
    return super().create_metadata(destination, full_file_name)._replace(
        mime_type='application/vnd.apache.parquet',
        compression_type=CompressionTypes.UNCOMPRESSED)

  def open(self, fh) -> None:
    self._fh = fh
    self._rows = []

  def write(self, record: Dict[str, Any]) -> None:
    self._rows.append(record)

  def flush(self) -> None:
    table = pa.Table.from_pylist(self._rows, schema=self._schema)
    # Built in memory, then written in one call: Beam's file handles (GCS, S3,
    # HDFS) are write-only streams, and a window's rows are few.
    buffer = pa.BufferOutputStream()
    pq.write_table(table, buffer)
    self._fh.write(buffer.getvalue().to_pybytes())
    self._fh.flush()
    self._rows = []


class _ToArchiveRowFn(beam.DoFn):
  """Output element -> ((folder, shard), row), timestamped at the row's event time (or later)."""

  def __init__(self, spec: ArchivedOutput, shards: int):
    self._spec = spec
    self._shards = shards

  def _row(self, element, element_ts) -> Dict[str, Any]:
    if self._spec.name == 'alerts':
      return alert_row(element)
    if self._spec.name == 'window_stats':
      return window_stats_row(element)
    # A bounded file source stamps records at the minimum timestamp: then the
    # record's arrival at the archive stands in for its ingestion time.
    received_ms = element_ts.micros // 1000 if element_ts > MIN_TIMESTAMP else int(time.time() * 1000)
    return dead_letter_row(element, received_ms)

  def process(self, element, element_ts=beam.DoFn.TimestampParam):
    row = self._row(element, element_ts)
    ts_ms = row[self._spec.time_column]
    key = row_key(row, self._spec.name)
    shard = zlib.crc32(key.encode('utf-8')) % self._shards  # stable across workers
    folder = (self._spec.name,) + partition_dirs(ts_ms)
    # The file window: the row's event time, but never earlier than the
    # element's own timestamp (a stateful scorer emits alerts at its timer's
    # time), so the archive never makes an element later than it is.
    yield TimestampedValue(((folder, shard), row), max(element_ts, Timestamp.of(ts_ms / 1000.0)))


def _replace(source: str, destination: str) -> None:
  """Renames source over destination (local files and object stores overwrite in one step)."""
  try:
    FileSystems.rename([source], [destination])
  except BeamIOError:
    # HDFS does not rename over an existing file: it is an earlier copy of
    # the same rows (same name), so it can go.
    if not FileSystems.exists(destination):
      raise
    FileSystems.delete([destination])
    FileSystems.rename([source], [destination])


class _WriteParquetFileFn(beam.DoFn):
  """((folder, shard), rows) of one window pane -> one Parquet file, moved into place whole."""

  def __init__(self, archive_dir: str, spec: ArchivedOutput):
    self._archive_dir = archive_dir
    self._spec = spec
    self._files = Metrics.counter(METRICS_NAMESPACE, f'archive_files_{spec.name}')
    self._rows = Metrics.counter(METRICS_NAMESPACE, f'archive_rows_{spec.name}')

  def process(self, element, win=beam.DoFn.WindowParam):
    (folder, shard), rows = element
    # Sorted, so the same rows give the same bytes as well as the same name.
    rows = sorted(rows, key=lambda r: (r[self._spec.time_column], repr(sorted(r.items()))))
    name = file_name(win.start.micros // 1000, shard, rows, self._spec.name)
    final = FileSystems.join(self._archive_dir, *folder, name)
    temporary = FileSystems.join(self._archive_dir, *folder, f'.{name}.{uuid.uuid4().hex}.tmp')
    sink = ParquetSink(self._spec.schema)
    metadata = sink.create_metadata(self._spec.name, temporary)
    try:
      handle = FileSystems.create(temporary, **metadata._asdict())
      try:
        sink.open(handle)
        for row in rows:
          sink.write(row)
        sink.flush()
      finally:
        handle.close()
      _replace(temporary, final)
    except Exception:
      _delete_quietly(temporary)
      raise  # the runner retries the bundle
    self._files.inc()
    self._rows.inc(len(rows))
    logger.debug('Archived %d rows to %s', len(rows), final)
    yield final


def _delete_quietly(path: str) -> None:
  try:
    if FileSystems.exists(path):
      FileSystems.delete([path])
  except (BeamIOError, OSError):
    logger.warning('Could not delete the temporary file %s', path)


class _ArchiveOutput(beam.PTransform):
  """One output -> Parquet files under <archive_dir>/<output>/dt=.../hour=.../."""

  def __init__(self, archive_dir: str, spec: ArchivedOutput, period_s: float, shards: int,
               allowed_lateness_s: float):
    super().__init__()
    self._archive_dir = archive_dir
    self._spec = spec
    self._period_s = period_s
    self._shards = shards
    self._lateness_s = allowed_lateness_s

  def expand(self, elements):
    return (
        elements
        # One pane when the watermark passes the window, then one per late
        # arrival; each pane is a file of its own (DISCARDING: no row twice).
        # Windowed before the rows are restamped: a restamped element is
        # assigned to windows again, and it must get exactly one.
        | 'FileWindows' >> beam.WindowInto(
            window.FixedWindows(self._period_s),
            trigger=trigger.AfterWatermark(late=trigger.AfterCount(1)),
            accumulation_mode=trigger.AccumulationMode.DISCARDING,
            allowed_lateness=self._lateness_s)
        | 'ToRowsByFile' >> beam.ParDo(_ToArchiveRowFn(self._spec, self._shards))
        | 'GroupByFile' >> beam.GroupByKey()
        | 'WriteParquetFiles' >> beam.ParDo(_WriteParquetFileFn(self._archive_dir, self._spec)))


class ArchiveToParquet(beam.PTransform):
  """{'alerts', 'window_stats', 'dead_letters': PCollection, ...} (build_pipeline's
  outputs; others are ignored) -> {output: PCollection of the written file paths}."""

  def __init__(self, archive_dir: str, period_s: float = 600.0, shards: int = 1,
               allowed_lateness_s: float = 0.0):
    super().__init__()
    self._archive_dir = archive_dir
    self._period_s = period_s
    self._shards = shards
    self._lateness_s = allowed_lateness_s

  def expand(self, outputs):
    return {
        name: outputs[name] | f'Archive_{name}' >> _ArchiveOutput(
            self._archive_dir, spec, self._period_s, self._shards, self._lateness_s)
        for name, spec in ARCHIVED_OUTPUTS.items()
    }


class ArchiveOptions(PipelineOptions):

  @classmethod
  def _add_argparse_args(cls, parser):
    group = parser.add_argument_group('Parquet archive (docs/archive.md)')
    group.add_argument(
        '--archive_dir', type=str, default=None,
        help='Folder (a local path or any filesystem Beam supports, e.g. '
        'gs://bucket/archive) to archive alerts, window statistics and dead '
        'letters to, as Parquet in <output>/dt=YYYY-MM-DD/hour=HH/. '
        'Default: none (no archive).')
    group.add_argument(
        '--archive_period', type=float, default=600.0,
        help='Seconds of event time per archive file window: a window\'s files '
        'appear once the watermark has passed its end. Must divide an hour. '
        'Default: 600.')
    group.add_argument(
        '--archive_shards', type=int, default=1,
        help='Files (parallel writers) per output, hour folder and window. Default: 1.')


def _check_writable_local_dir(path: str) -> None:
  if os.path.exists(path) and not os.path.isdir(path):
    raise InvalidOptionError('archive_dir', f'{path} exists and is not a folder')
  existing = os.path.abspath(path)
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    raise InvalidOptionError('archive_dir', f'cannot create {path}: {existing} is not a folder')
  if not os.access(existing, os.W_OK | os.X_OK):
    raise InvalidOptionError('archive_dir', f'cannot write to {existing}')


def validate_archive(options: PipelineOptions) -> ArchiveOptions:
  """Returns the ArchiveOptions view, or raises InvalidOptionError naming the option.

  Local folders are checked for writing; for other filesystems only the scheme
  is checked here (no network calls before the job starts).
  """
  opts = options.view_as(ArchiveOptions)
  period_ms = round(opts.archive_period * 1000)
  if not (0 < opts.archive_period <= 3600 and 3_600_000 % period_ms == 0):
    raise InvalidOptionError('archive_period', 'must be a number of seconds that divides 3600')
  if opts.archive_shards < 1:
    raise InvalidOptionError('archive_shards', 'must be >= 1')
  if opts.archive_dir is None:
    return opts
  if not opts.archive_dir.strip():
    raise InvalidOptionError('archive_dir', 'must not be empty')
  try:
    filesystem = FileSystems.get_filesystem(opts.archive_dir)
  except ValueError as error:
    raise InvalidOptionError('archive_dir', f'no Beam filesystem for this path: {error}') from None
  if isinstance(filesystem, LocalFileSystem):
    _check_writable_local_dir(opts.archive_dir)
  return opts


def archive_outputs(outputs: Dict[str, beam.PCollection],
                    options: PipelineOptions) -> Optional[Dict[str, beam.PCollection]]:
  """Archives build_pipeline's outputs when --archive_dir is set (else does nothing).

  The one call every entry point makes after build_pipeline. Late data is
  archived as long as the pipeline itself still accepts it: the archive
  windows allow allowed_lateness + window_size + window_period of lateness.
  """
  archive = validate_archive(options)
  if archive.archive_dir is None:
    return None
  detection = validate(options)
  lateness_s = detection.allowed_lateness + detection.window_size + detection.window_period
  return outputs | 'ArchiveToParquet' >> ArchiveToParquet(
      archive.archive_dir, archive.archive_period, archive.archive_shards, lateness_s)
