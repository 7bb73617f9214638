"""Options: defaults, and bad values failing before the pipeline is built, naming the option."""

import subprocess
import sys

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.options import AnomalyOptions, InvalidOptionError, validate


def test_defaults_match_the_original_job():
  opts = validate(PipelineOptions([]))
  assert (opts.window_size, opts.window_period) == (10.0, 5.0)
  assert (opts.rule, opts.threshold, opts.baseline) == ('absolute', 50.0, 'trailing')


@pytest.mark.parametrize('args, option', [
    (['--window_size=0'], 'window_size'),
    (['--window_period=-5'], 'window_period'),
    (['--window_size=10', '--window_period=20'], 'window_period'),
    (['--window_size=10', '--window_period=3'], 'window_period'),
    (['--allowed_lateness=-1'], 'allowed_lateness'),
    (['--threshold=nan'], 'threshold'),
    (['--min_count=0'], 'min_count'),
    (['--min_stddev=0'], 'min_stddev'),
    (['--max_record_bytes=0'], 'max_record_bytes'),
    (['--min_event_time=yesterday'], 'min_event_time'),
    (['--min_event_time=2030-01-01T00:00:00Z', '--max_event_time=2020-01-01T00:00:00Z'], 'max_event_time'),
])
def test_invalid_options_name_the_option(args, option):
  with pytest.raises(InvalidOptionError) as error:
    validate(PipelineOptions(args))
  assert error.value.option == option
  assert str(error.value).startswith(f'--{option}:')


def test_choices_are_enforced_by_the_parser():
  with pytest.raises(SystemExit):
    PipelineOptions(['--rule=median']).view_as(AnomalyOptions)


def test_entry_point_fails_fast_with_the_option_name(tmp_path):
  result = subprocess.run(
      [sys.executable, '-m', 'pipeline', '--window_size=10', '--window_period=4',
       f'--input_file={tmp_path}/none', f'--output_dir={tmp_path}/out'],
      capture_output=True, text=True, timeout=120)
  assert result.returncode != 0
  assert '--window_period: must divide --window_size' in result.stderr
  assert not (tmp_path / 'out').exists()
