"""File source and sinks, for replaying recorded readings without Kafka."""

import apache_beam as beam
from apache_beam.coders import coders

from transforms.encode import to_json_line
from transforms.records import RawRecord


class ReadRawRecordsFromFiles(beam.PTransform):
  """One RawRecord per line of the files matching `pattern`, bytes untouched."""

  def __init__(self, pattern: str):
    super().__init__()
    self._pattern = pattern

  def expand(self, pbegin):
    return (
        pbegin
        | 'ReadLines' >> beam.io.ReadFromText(self._pattern, coder=coders.BytesCoder())
        | 'ToRawRecord' >> beam.Map(lambda line: RawRecord(payload=line)))


class WriteJsonLines(beam.PTransform):
  """Elements -> JSON lines under `prefix`."""

  def __init__(self, prefix: str):
    super().__init__()
    self._prefix = prefix

  def expand(self, elements):
    return (
        elements
        | 'ToJson' >> beam.Map(to_json_line)
        | 'Write' >> beam.io.WriteToText(self._prefix, file_name_suffix='.jsonl'))
