"""Entry point of the job.

  python -m pipeline [Beam/Flink options] [anomaly options] [kafka options]
      reads --readings_topic from Kafka and writes alerts, window statistics, dead letters
      and late readings to their topics (pipeline/kafka_io.py);
  python -m pipeline --input_file=readings.jsonl --output_dir=out/
      replays recorded records from files into JSON-lines files instead.

run(argv) parses and validates every option first (failing fast, naming the option),
then wires a source, build_pipeline and the sinks.
"""

import argparse
import logging
import os
import sys
from typing import Callable, List, Optional

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.runners.runner import PipelineResult

from pipeline.archive import archive_outputs, validate_archive
from pipeline.build import OUTPUTS, build_pipeline
from pipeline.file_io import ReadRawRecordsFromFiles, WriteJsonLines
from pipeline.kafka_io import (ReadSensorRecords, number_external_transforms_afresh,
                               validate_kafka, write_outputs)
from pipeline.options import InvalidOptionError, validate

logger = logging.getLogger(__name__)


def _io_args(argv):
  parser = argparse.ArgumentParser(add_help=False)
  parser.add_argument('--input_file', help='Glob of files with one record per line.')
  parser.add_argument('--output_dir', help='Folder for alerts/, window_stats/, dead_letters/, late/.')
  return parser.parse_known_args(argv)


def make_pipeline(argv: List[str]) -> beam.Pipeline:
  """Validates the options and returns the wired (not yet running) pipeline."""
  io_args, beam_args = _io_args(argv)
  options = PipelineOptions(beam_args)
  validate(options)
  validate_archive(options)
  if io_args.input_file:
    if not io_args.output_dir:
      raise InvalidOptionError('output_dir', 'is required with --input_file')
    p = beam.Pipeline(options=options)
    records = p | 'ReadRecords' >> ReadRawRecordsFromFiles(io_args.input_file)
    outputs = build_pipeline(records, options)
    for name in OUTPUTS:
      outputs[name] | f'Write_{name}' >> WriteJsonLines(os.path.join(io_args.output_dir, name, 'part'))
    archive_outputs(outputs, options)
    return p
  if io_args.output_dir:
    raise InvalidOptionError('output_dir', 'only applies with --input_file; Kafka mode writes topics')
  kafka = validate_kafka(options)
  if kafka.max_num_records is None:
    options.view_as(StandardOptions).streaming = True
  number_external_transforms_afresh()  # a savepoint must fit the ids of any later build
  p = beam.Pipeline(options=options)
  read = ReadSensorRecords(kafka, blocks=True)  # parsed where they are unpacked
  records = p | 'ReadSensorRecords' >> read
  outputs = build_pipeline(records, options, unpack=read.unpack)
  write_outputs(outputs, kafka)
  archive_outputs(outputs, options)
  return p


def run(argv: Optional[List[str]] = None, wait: bool = True,
        make: Callable[[List[str]], beam.Pipeline] = make_pipeline) -> PipelineResult:
  """Builds (with `make`: this job, or a benchmark baseline around the same source and
  sink) and starts the job; waits for it to end unless wait=False."""
  p = make(argv if argv is not None else sys.argv[1:])
  result = p.run()
  if wait:
    result.wait_until_finish()
  return result


def main(make: Callable[[List[str]], beam.Pipeline] = make_pipeline) -> None:
  logging.basicConfig(level=logging.INFO)
  try:
    run(make=make)
  except InvalidOptionError as error:
    sys.exit(f'error: {error}')


if __name__ == '__main__':
  main()
