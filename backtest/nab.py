"""`make nab`: backtest every project detector on a NAB folder, score it and the reference detectors.

    python -m backtest.nab --nab ../shared/nab --out .local/nab/results

Prints one row per detector with its normalised score under the three NAB
profiles (backtest/nab_score.py), project detectors first, then the published
detectors in `<nab>/reference_results`; the last line is
`nab standard: <score of the default detector>`.
"""

import argparse
import logging
import os
import sys
from typing import Dict, List, Optional

from backtest import nab_score
from backtest.run import DEFAULT_DETECTOR, DETECTORS, run_backtest

PROFILES = ('standard', 'reward_low_FP_rate', 'reward_low_FN_rate')


def format_scores(scores: Dict[str, Dict[str, dict]], sources: Dict[str, str]) -> str:
  lines = ['%-22s %-9s %9s %9s %9s %10s %4s %4s' % (
      'detector', 'source', 'standard', 'low_FP', 'low_FN', 'threshold', 'TP', 'FP')]
  for detector, profiles in scores.items():
    std = profiles['standard']
    lines.append('%-22s %-9s %9.1f %9.1f %9.1f %10.4g %4d %4d' % (
        detector, sources[detector], *(profiles[p]['score'] for p in PROFILES),
        std['threshold'], std['tp'], std['fp']))
  return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--nab', required=True, help='NAB folder with data/, labels/, reference_results/')
  parser.add_argument('--out', required=True, help='results folder for the project detectors')
  args, beam_args = parser.parse_known_args(argv)
  logging.basicConfig(level=logging.WARNING, format='%(message)s')
  labels = os.path.join(args.nab, 'labels')
  run = run_backtest(os.path.join(args.nab, 'data'), args.out, tuple(DETECTORS),
                     os.path.join(labels, 'combined_windows.json'),
                     beam_args or ('--runner=FnApiRunner',))
  print('backtest: %d readings in %d series, %d detectors, %.2f s: %.0f readings/s' % (
      run['readings'], run['series'], len(DETECTORS), run['seconds'],
      run['readings'] / run['seconds']))
  scores = nab_score.score_results(args.out, labels, list(DETECTORS))
  sources = {d: 'project' for d in scores}
  reference = os.path.join(args.nab, 'reference_results')
  if os.path.isdir(reference):
    ref_scores = nab_score.score_results(reference, labels)
    scores.update(ref_scores)
    sources.update({d: 'reference' for d in ref_scores})
  print(format_scores(scores, sources))
  print('nab standard: %.1f' % scores[DEFAULT_DETECTOR]['standard']['score'])
  return 0


if __name__ == '__main__':
  sys.exit(main())
