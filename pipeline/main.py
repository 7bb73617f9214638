"""Entry point: `python -m pipeline --input_file=readings.jsonl --output_dir=out/`.

run(argv) parses and validates options (failing fast, naming the option),
then wires a source, build_pipeline and the sinks.
"""

import argparse
import logging
import os
import sys
from typing import List, Optional

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.build import OUTPUTS, build_pipeline
from pipeline.file_io import ReadRawRecordsFromFiles, WriteJsonLines
from pipeline.options import InvalidOptionError, validate

logger = logging.getLogger(__name__)


def _io_args(argv):
  parser = argparse.ArgumentParser(add_help=False)
  parser.add_argument('--input_file', help='Glob of files with one record per line.')
  parser.add_argument('--output_dir', help='Folder for alerts/, window_stats/, dead_letters/, late/.')
  return parser.parse_known_args(argv)


def run(argv: Optional[List[str]] = None) -> None:
  io_args, beam_args = _io_args(argv if argv is not None else sys.argv[1:])
  options = PipelineOptions(beam_args)
  validate(options)
  if not io_args.input_file:
    raise InvalidOptionError('input_file', 'is required (the Kafka source comes with runners/)')
  if not io_args.output_dir:
    raise InvalidOptionError('output_dir', 'is required')
  with beam.Pipeline(options=options) as p:
    records = p | 'ReadRecords' >> ReadRawRecordsFromFiles(io_args.input_file)
    outputs = build_pipeline(records, options)
    for name in OUTPUTS:
      outputs[name] | f'Write_{name}' >> WriteJsonLines(os.path.join(io_args.output_dir, name, 'part'))


def main() -> None:
  logging.basicConfig(level=logging.INFO)
  try:
    run()
  except InvalidOptionError as error:
    sys.exit(f'error: {error}')


if __name__ == '__main__':
  main()
