"""The step search for a job's maximum sustained rate, one bench.trial process per rate.

  python -m bench.measure --mode embedded --sensors 1000 --parallelism 1 --start 1000 \
      --out .local/bench/search-embedded-p1.json [-- extra job options]
  python -m bench.measure --rates 1000,2000,5000 ...   # fixed rates instead of a search
  python -m bench.measure --mode cluster --job java --start 5000 --factor 4 ...   # a baseline

Options it does not know go to bench.trial (--mode, --job, --sensors, ...). The search
(bench.analysis.next_rate) grows from --start by --factor while the lag stays bounded,
then bisects between the highest bounded and the lowest unbounded rate to within
--resolution. A trial that failed (its report holds the error) counts as not sustained.
Each trial is its own process, in its own session so that a trial that hangs is ended with
everything it started (its job server JVM, its load generator) and nothing else. The output
is every trial's report plus `max_rps`.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence

from bench.analysis import max_bounded, next_rate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_trial_process(rate: float, trial_args: Sequence[str], job_args: Sequence[str],
                      timeout_s: float) -> Dict:
  """Runs `python -m bench.trial` for one rate; its report, or {'error': ...}."""
  cmd = [sys.executable, '-m', 'bench.trial', '--rate', str(rate), *trial_args,
         '--', *job_args]
  proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, start_new_session=True)
  try:
    out, err = proc.communicate(timeout=timeout_s)
  except subprocess.TimeoutExpired:
    os.killpg(proc.pid, signal.SIGKILL)  # the trial's own session: its JVM and load too
    proc.communicate()
    return {'offered_rps': rate, 'error': f'timed out after {timeout_s:.0f} s'}
  except BaseException:  # Ctrl-C reaches us, not the trial's session: end it too
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    raise
  lines = [line for line in out.splitlines() if line.startswith('{')]
  if proc.returncode != 0 or not lines:
    return {'offered_rps': rate, 'error': f'exit {proc.returncode}: {err.strip()[-2000:]}'}
  return json.loads(lines[-1])


def search(trial_args: Sequence[str], job_args: Sequence[str], start: float,
           rates: Optional[List[float]], resolution: float, max_trials: int,
           timeout_s: float, log=print, factor: float = 2.0,
           may_start: Callable[[], bool] = lambda: True,
           run_trial: Callable[..., Dict] = run_trial_process) -> Dict:
  """Trials at `rates` in order, or, without rates, the step search from `start` (growing
  by `factor`). Before each trial may_start() is asked (bench.run: is there budget left?);
  when it says no, the result says so in `stopped`."""
  trials: Dict[float, bool] = {}
  reports = []
  pending = list(rates or [])
  while len(reports) < max_trials:
    if rates is not None:
      rate = pending.pop(0) if pending else None
    else:
      rate = next_rate(trials, start, factor=factor, resolution=resolution)
    if rate is None:
      break
    if not may_start():
      return {'max_rps': max_bounded(trials), 'trials': reports,
              'stopped': f'out of budget before the trial at {rate:.0f}/s'}
    report = run_trial(rate, trial_args, job_args, timeout_s)
    reports.append(report)
    verdict = report.get('verdict') or {}
    trials[rate] = bool(verdict.get('bounded'))
    log(f"bench: offered {rate:.0f}/s consumed {verdict.get('consumed_rps')}/s "
        f"{'bounded' if trials[rate] else 'UNBOUNDED'}: "
        f"{verdict.get('reason') or report.get('error')}; "
        f"p99={report.get('latency', {}).get('p99_ms')} ms; cpu={report.get('cpu')}")
  return {'max_rps': max_bounded(trials), 'trials': reports}


def main(argv: Optional[Sequence[str]] = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--start', type=float, default=1000.0, help='first rate (default 1000)')
  parser.add_argument('--rates', help='comma-separated fixed rates instead of a search')
  parser.add_argument('--resolution', type=float, default=0.15,
                      help='stop when bounded and unbounded rates are this close (default 0.15)')
  parser.add_argument('--factor', type=float, default=2.0,
                      help='growth from one bounded rate to the next (default 2)')
  parser.add_argument('--max_trials', type=int, default=8)
  parser.add_argument('--trial_timeout', type=float, default=600.0, help='seconds (default 600)')
  parser.add_argument('--out', help='write the JSON here')
  args, rest = parser.parse_known_args(argv)
  split = rest.index('--') if '--' in rest else len(rest)
  trial_args, job_args = rest[:split], rest[split + 1:]
  rates = [float(r) for r in args.rates.split(',')] if args.rates else None
  started = time.time()
  result = search(trial_args, job_args, args.start, rates, args.resolution, args.max_trials,
                  args.trial_timeout, log=lambda line: print(line, file=sys.stderr, flush=True),
                  factor=args.factor)
  result['seconds'] = round(time.time() - started)
  if args.out:
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w', encoding='utf-8') as handle:
      json.dump(result, handle, indent=1)
  print(json.dumps({'max_rps': result['max_rps'], 'trials': len(result['trials'])}))


if __name__ == '__main__':
  main()
