"""docs/options.md is generated from the job's argparse definitions (runners/options_table.py)
and must be up to date."""

import argparse

from pipeline.options import AnomalyOptions
from runners import options_table


class _ToyOptions:  # not a PipelineOptions: its flags must not reach other tests' pipelines

  @classmethod
  def _add_argparse_args(cls, parser):
    group = parser.add_argument_group('toy')
    group.add_argument('--size', type=float, default=1.0,
                       help='How big, in seconds |x|. Default: 1.')
    group.add_argument('--mode', choices=('a', 'b'), default='a', help='Which. Default: a.')


def test_every_job_options_class_is_found_the_detectors_first():
  names = [c.__name__ for c in options_table.option_classes()]
  assert names[0] == 'AnomalyOptions'
  assert {'AnomalyOptions', 'KafkaOptions', 'ArchiveOptions'} <= set(names)


def test_a_row_per_option_with_its_values_and_help_pipes_escaped():
  text = options_table.render([_ToyOptions])
  module = _ToyOptions.__module__.replace('.', '/')  # tests/..., wherever this file lives
  assert f'## Toy\n\nFrom `_ToyOptions` in `{module}.py`.' in text
  assert '| `--size` | float | How big, in seconds \\|x\\|. Default: 1. |' in text
  assert '| `--mode` | `a`, `b` | Which. Default: a. |' in text


def test_every_option_of_the_job_is_in_the_table():
  text = options_table.render()
  parser = argparse.ArgumentParser(add_help=False)
  AnomalyOptions._add_argparse_args(parser)  # pylint: disable=protected-access
  parser_options = [a.option_strings[0] for a in parser._actions]  # pylint: disable=protected-access
  assert parser_options and all(f'| `{name}` |' in text for name in parser_options)


def test_the_repository_page_is_up_to_date():
  with open(options_table.OUT, encoding='utf-8') as handle:
    assert handle.read() == options_table.render(), (
        'docs/options.md is stale: run make options-doc')


def test_check_fails_on_a_stale_page_and_passes_on_a_fresh_one(tmp_path, capsys):
  page = tmp_path / 'options.md'
  page.write_text('# Options\n\nhand-edited\n', encoding='utf-8')
  assert options_table.main(['--out', str(page), '--check']) == 1
  assert 'is stale' in capsys.readouterr().err
  assert page.read_text(encoding='utf-8') == '# Options\n\nhand-edited\n'  # --check writes nothing
  assert options_table.main(['--out', str(page)]) == 0
  assert options_table.main(['--out', str(page), '--check']) == 0
