"""Look into a Parquet archive without a Parquet viewer.

  python -m pipeline.archive_tool show ARCHIVE [--output alerts] [--limit 20] [--dedupe]
  python -m pipeline.archive_tool to-csv ARCHIVE [--output alerts] --out FILE [--dedupe]

ARCHIVE is the job's --archive_dir; --out - writes the CSV to standard output.
--dedupe drops rows repeated after a crash and restart (same alert_id for alerts).
"""

import argparse
import sys
from typing import List, Optional

from pipeline.archive import ARCHIVED_OUTPUTS
from pipeline.archive_read import drop_duplicates, format_table, output_path, read_output, write_csv


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog='python -m pipeline.archive_tool', description=__doc__.split('\n')[0])
  commands = parser.add_subparsers(dest='command', required=True)
  show = commands.add_parser('show', help='Print an output of the archive as a table.')
  to_csv = commands.add_parser('to-csv', help='Convert an output of the archive to CSV.')
  for command in (show, to_csv):
    command.add_argument('archive', metavar='ARCHIVE', help='The job\'s --archive_dir.')
    command.add_argument('--output', choices=sorted(ARCHIVED_OUTPUTS), default='alerts',
                         help='Which output. Default: alerts.')
    command.add_argument('--dedupe', action='store_true',
                         help='Drop repeated rows (alerts: by alert_id). Default: keep them.')
  show.add_argument('--limit', type=int, default=20, help='Rows to print. Default: 20.')
  to_csv.add_argument('--out', required=True, help='CSV file to write, or - for standard output.')
  return parser


def main(argv: Optional[List[str]] = None) -> int:
  args = _parser().parse_args(argv)
  try:
    table = read_output(args.archive, args.output)
  except FileNotFoundError:
    print(f'error: {output_path(args.archive, args.output)}: no such folder', file=sys.stderr)
    return 2
  if args.dedupe:
    table = drop_duplicates(table, args.output)
  if args.command == 'show':
    print(format_table(table, args.limit))
  elif args.out == '-':
    write_csv(table, sys.stdout.buffer)
  else:
    write_csv(table, args.out)
  return 0


if __name__ == '__main__':
  sys.exit(main())
