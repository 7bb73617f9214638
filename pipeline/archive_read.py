"""Reading the Parquet archive back: one output as a table, without duplicates, as CSV or text.

Pure functions over pyarrow; the command line around them is pipeline/archive_tool.py.
Files whose names start with '.' or '_' (the writer's temporary files) are
never read: pyarrow.dataset skips them by default.
"""

import base64
from typing import BinaryIO, List, Union

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.dataset as ds

from pipeline.archive import ARCHIVED_OUTPUTS, TIMESTAMP, key_columns

# The folders dt=YYYY-MM-DD/hour=HH; read as text, so '05' stays '05'.
_PARTITIONING = ds.partitioning(pa.schema([('dt', pa.string()), ('hour', pa.string())]), flavor='hive')


def output_path(archive_dir: str, output: str) -> str:
  return f"{archive_dir.rstrip('/')}/{output}"


def read_output(archive_dir: str, output: str) -> pa.Table:
  """Every row of one output (its declared schema), oldest first, then by key and
  the other columns: a fixed order, in which a repeated alert's first copy is the
  one detected first.

  archive_dir is a local path or a URI pyarrow knows (gs://, s3://, hdfs://).
  Raises FileNotFoundError when the output has no folder yet.
  """
  spec = ARCHIVED_OUTPUTS[output]
  dataset = ds.dataset(output_path(archive_dir, output), format='parquet',
                       schema=spec.schema, partitioning=_PARTITIONING)
  table = dataset.to_table()
  order = [spec.time_column] + key_columns(output) + spec.schema.names
  order = list(dict.fromkeys(order))
  return table.sort_by([(name, 'ascending') for name in order])


def drop_duplicates(table: pa.Table, output: str) -> pa.Table:
  """Keeps the first row of each key: alert_id for alerts, the whole row otherwise.

  After a crash and restart the archive may hold a row twice (docs/archive.md);
  this is the one place that removes such repeats.
  """
  if table.num_rows == 0:
    return table
  numbered = table.append_column('__row', pa.array(range(table.num_rows), pa.int64()))
  firsts = numbered.group_by(key_columns(output), use_threads=False).aggregate([('__row', 'min')])
  return table.take(pa.array(sorted(firsts['__row_min'].to_pylist()), pa.int64()))


def as_text(table: pa.Table) -> pa.Table:
  """Times as ISO-8601 UTC with milliseconds (as in the JSON outputs), bytes as base64."""
  columns = []
  for column, field in zip(table.columns, table.schema):
    if field.type == TIMESTAMP:
      column = pc.strftime(column, format='%Y-%m-%dT%H:%M:%SZ')
    elif field.type == pa.binary():
      column = pa.array([None if v is None else base64.b64encode(v).decode('ascii')
                         for v in column.to_pylist()], pa.string())
    columns.append(column)
  return pa.table(columns, names=table.column_names)


def write_csv(table: pa.Table, out: Union[str, BinaryIO]) -> None:
  pcsv.write_csv(as_text(table), out)


def format_table(table: pa.Table, limit: int = 20, max_width: int = 36) -> str:
  """The first `limit` rows as aligned text columns, and how many rows there are."""
  text = as_text(table.slice(0, limit))
  rows: List[List[str]] = [text.column_names]
  for record in text.to_pylist():
    rows.append(['' if v is None else str(v) for v in record.values()])
  rows = [[_clip(cell, max_width) for cell in row] for row in rows]
  widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
  lines = ['  '.join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
  lines.insert(1, '  '.join('-' * w for w in widths))
  lines.append(f'({min(limit, table.num_rows)} of {table.num_rows} rows)')
  return '\n'.join(lines)


def _clip(cell: str, width: int) -> str:
  cell = cell.replace('\n', ' ')
  return cell if len(cell) <= width else cell[:width - 3] + '...'
