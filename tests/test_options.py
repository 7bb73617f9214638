"""Options: defaults, and bad values failing before the pipeline is built, naming the option."""

import subprocess
import sys

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.build import make_rule
from pipeline.options import AnomalyOptions, InvalidOptionError, validate


def test_defaults_keep_the_original_windows_with_the_likelihood_rule():
  opts = validate(PipelineOptions([]))
  assert (opts.window_size, opts.window_period) == (10.0, 5.0)
  assert (opts.rule, opts.threshold, opts.baseline) == ('likelihood', None, 'trailing')
  assert (opts.trailing_windows, opts.season) == (1, 0.0)
  assert make_rule(opts).threshold == 0.5  # the likelihood rule's default threshold


def test_the_original_rule_is_two_options_away():
  rule = make_rule(PipelineOptions(['--rule=absolute', '--threshold=50']))
  assert (rule.name, rule.threshold, rule.is_stateful) == ('absolute', 50.0, False)
  assert make_rule(PipelineOptions(['--rule=absolute'])).threshold == 50.0


@pytest.mark.parametrize('args, option', [
    (['--window_size=0'], 'window_size'),
    (['--window_period=-5'], 'window_period'),
    (['--window_size=10', '--window_period=20'], 'window_period'),
    (['--window_size=10', '--window_period=3'], 'window_period'),
    (['--allowed_lateness=-1'], 'allowed_lateness'),
    (['--threshold=nan'], 'threshold'),
    (['--threshold=1'], 'threshold'),  # likelihood scores are at most 1: it would never alert
    (['--min_count=0'], 'min_count'),
    (['--min_stddev=0'], 'min_stddev'),
    (['--max_record_bytes=0'], 'max_record_bytes'),
    (['--max_clock_skew=0'], 'max_clock_skew'),
    (['--trailing_windows=0'], 'trailing_windows'),
    (['--season=-1'], 'season'),
    (['--season=12'], 'season'),  # not a multiple of the 5 s period
    (['--season=5'], 'season'),  # shorter than the 10 s window
    (['--baseline_lag=-5'], 'baseline_lag'),
    (['--baseline_lag=inf'], 'baseline_lag'),
    (['--score_half_life=0'], 'score_half_life'),
    (['--alert_hold=-1'], 'alert_hold'),
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


def test_the_default_baseline_lag_depends_on_the_baseline():
  from pipeline.build import make_shape
  assert make_shape(PipelineOptions([])).lag_ms == 3000  # trailing: no wait at window ends
  assert make_shape(PipelineOptions(['--baseline=containing'])).lag_ms == 0  # as the original job
  assert make_shape(PipelineOptions(['--baseline_lag=0'])).lag_ms == 0
  assert make_shape(PipelineOptions(['--baseline=containing', '--baseline_lag=2.5'])).lag_ms == 2500
