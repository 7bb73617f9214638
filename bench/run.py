"""make bench: throughput, alert latency, memory and cost of our job and its two baselines.

  python -m bench.run [--plan quick|full] [--budget_min N] [--no_table]
  python -m bench.run --redo ours_cluster[,KEY...] [--previous .local/bench/latest.json]

--redo measures only those steps of the plan again and takes every other step's result
from the previous results file, as it was (the table says which steps were re-measured
when): for a step whose trials failed for a reason that has since been fixed.

Starts what is not running, through the project's scripts, and at the end stops only what it
started: a Kafka broker on 127.0.0.1:9192 (KAFKA_PORT=9192 runners/kafka.sh) and a KafkaIO
expansion service on localhost:8197 (EXPANSION_PORT=8197 runners/expansion_service.sh), the
benchmark's own so that it never shares a broker with the demo or the tests (on 9092/8097),
and, when the plan has cluster steps, the standalone Flink cluster with its worker pool
(runners/flink_cluster.sh, REST localhost:8081: there is one per machine). Then it runs the
plan (bench/plan.py) step by step, each trial a process of its own (bench.measure,
bench.trial), with a timeout; a failed trial or step is recorded with its error and the run
goes on. It stops starting trials once the next one would end past the budget (+10 %).

Out: .local/bench/bench-<UTC time>.json and .local/bench/latest.json (machine, versions,
every trial's report, the figures with the reason for each one missing), the table in
docs/performance.md between its two markers, a summary, and as the last line

  bench: max_rps=<n> p99_ms=<n> vs_java=<ratio> vs_beam_zscore=<ratio>

Exit status 0 whenever figures were measured, also when targets are missed; 1 only when not
a single trial ran to a verdict (services down, every trial failed).
"""

import argparse
import json
import os
import signal
import sys
import time
from datetime import datetime, timezone
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from bench import flink_rest, machine, measure, plan, report
from runners.services import Services

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, '.local', 'bench')
TABLE_DOC = os.path.join(ROOT, 'docs', 'performance.md')  # the page with the table
FLINK_MASTER = 'localhost:8081'
GRACE = 0.1  # how far past the budget a trial may end before it is not started


class Budget:
  """Whether a trial of a given length still fits: elapsed + its estimate within the budget
  and GRACE."""

  def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic):
    self.seconds, self._clock = seconds, clock
    self._start = clock()

  def elapsed(self) -> float:
    return self._clock() - self._start

  def allows(self, trial_s: float) -> bool:
    return self.elapsed() + trial_s <= self.seconds * (1 + GRACE)


def step_status(outcome: Dict) -> Dict:
  """'done' when some trial came to a verdict, else 'failed' with the first error (or
  'skipped' when the budget ran out before any trial)."""
  trials = outcome.get('trials', [])
  if any('verdict' in t for t in trials):
    return {'status': 'done', 'reason': None}
  errors = [t['error'] for t in trials if t.get('error')]
  if errors:
    return {'status': 'failed', 'reason': errors[0][:500]}
  return {'status': 'skipped', 'reason': outcome.get('stopped') or 'no trial ran'}


def run_plan(steps: Sequence[plan.Step], execute: Callable[[plan.Step, Dict, Budget], Dict],
             budget: Budget, log: Callable[[str], None] = print) -> Iterator[Dict]:
  """Yields each step's result, in order, as it ends (a Ctrl-C keeps those already ended);
  execute(step, results so far, budget) -> a search result ({'max_rps', 'trials',
  'stopped'?}). Nothing a step does stops the others."""
  results: Dict[str, Dict] = {}
  for step in steps:
    started = budget.elapsed()
    entry = plan.describe(step)
    if not budget.allows(plan.trial_seconds(step)):
      entry.update(status='skipped', reason=(
          f'out of budget: {budget.elapsed() / 60:.0f} of {budget.seconds / 60:.0f} min used'),
                   max_rps=None, trials=[])
    else:
      log(f'bench: step {step.key}: {step.job} on {step.mode} Flink, {step.sensors:,} sensors, '
          f'parallelism {step.parallelism}')
      try:
        outcome = execute(step, results, budget)
      except Exception as error:  # pylint: disable=broad-except  (recorded; the run goes on)
        outcome = {'max_rps': None, 'trials': [], 'error': f'{type(error).__name__}: {error}'}
      entry.update(outcome)
      entry.update(step_status(outcome))
      if outcome.get('error'):
        entry.update(status='failed', reason=outcome['error'])
    entry['seconds'] = round(budget.elapsed() - started)
    results[step.key] = entry
    yield entry


def executor(addresses: Dict[str, str], log: Callable[[str], None]):
  """The real execute() for run_plan: bench.measure.search with the step's trial options."""
  def execute(step: plan.Step, results: Dict, budget: Budget) -> Dict:
    start, rates = plan.resolve_rate(step, results)
    trial_s = plan.trial_seconds(step)
    return measure.search(
        plan.trial_args(step, addresses['bootstrap'], addresses['expansion_service'],
                        addresses['flink_master']),
        list(step.job_args), start, None if step.search else rates, step.resolution, plan.trial_count(step),
        trial_s + plan.TIMEOUT_MARGIN_S, log=log, factor=step.factor,
        may_start=lambda: budget.allows(trial_s))
  return execute


def warm_up(execute, budget: Budget, log: Callable[[str], None]) -> Dict:
  """One trial of our job on the cluster before the measured ones, not reported as a
  figure (plan.CLUSTER_WARMUP says why); what it did, for the results file."""
  step = plan.CLUSTER_WARMUP
  log(f'bench: warming the cluster up: {step.rates[0]:.0f} readings/s for '
      f'{step.warmup + step.measure:.0f} s, not reported')
  trials = execute(step, {}, budget).get('trials') or [{}]
  last = trials[-1]
  return {'offered_rps': last.get('offered_rps'),
          'consumed_rps': (last.get('verdict') or {}).get('consumed_rps'),
          'error': last.get('error')}


def services_for(steps: Sequence[plan.Step], kafka_port: int,
                 expansion_port: int) -> List[tuple]:
  """(script, env) of each service the plan needs, in start order."""
  needed = [('kafka.sh', {'KAFKA_PORT': str(kafka_port)})]
  if any(s.job != 'java' for s in steps):
    needed.append(('expansion_service.sh', {'EXPANSION_PORT': str(expansion_port)}))
  if any(s.mode == 'cluster' for s in steps):
    needed.append(('flink_cluster.sh', None))
  return needed


def cluster_version() -> Optional[str]:
  """The Flink version the cluster itself reports."""
  try:
    return flink_rest.get(FLINK_MASTER, '/config').get('flink-version')
  except (OSError, ValueError):
    return None


def utc_stamp(now: Optional[datetime] = None) -> str:
  return (now or datetime.now(timezone.utc)).strftime('%Y%m%dT%H%M%SZ')


def write_results(doc: Dict, out_dir: str = OUT_DIR) -> str:
  """bench-<stamp>.json and latest.json (the same document); the former's path."""
  os.makedirs(out_dir, exist_ok=True)
  path = os.path.join(out_dir, f"bench-{doc['stamp']}.json")
  text = json.dumps(doc, indent=1) + '\n'
  for target in (path, os.path.join(out_dir, 'latest.json')):
    with open(target + '.tmp', 'w', encoding='utf-8') as handle:
      handle.write(text)
    os.replace(target + '.tmp', target)
  return path


def update_table(doc: Dict, path: Optional[str] = None) -> Optional[str]:
  """Rewrites the table between the markers of TABLE_DOC (or path); None, or why it did
  not."""
  path = path or TABLE_DOC
  try:
    with open(path, encoding='utf-8', newline='') as handle:  # line ends as they are
      text = handle.read()
    new = report.replace_table(text, report.table(doc))
  except (OSError, ValueError) as error:
    return f'{os.path.relpath(path, ROOT)} not updated: {error}'
  if new != text:
    with open(path + '.tmp', 'w', encoding='utf-8', newline='') as handle:
      handle.write(new)
    os.replace(path + '.tmp', path)
  return None


def finish(doc: Dict, steps: List[Dict]) -> Dict:
  """Adds the figures, targets and last line to a results document."""
  doc['steps'] = steps
  doc['figures'] = report.figures({s['key']: s for s in steps})
  doc['targets'] = report.targets(doc['figures'])
  doc['last_line'] = report.last_line(doc['figures'])
  return doc


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--plan', choices=plan.PLANS, default='quick',
                      help='quick (default, ~45 min) or full (~4.5 h); see bench/plan.py')
  parser.add_argument('--budget_min', type=float, default=None,
                      help='minutes the run may take; the plan is cut to fit (default: '
                      f"{plan.DEFAULT_BUDGET_MIN['quick']} for quick, "
                      f"{plan.DEFAULT_BUDGET_MIN['full']} for full)")
  parser.add_argument('--kafka_port', type=int, default=9192,
                      help="the benchmark's broker, started unless it runs (default 9192)")
  parser.add_argument('--expansion_port', type=int, default=8197,
                      help="the benchmark's KafkaIO expansion service (default 8197)")
  parser.add_argument('--no_table', '--no_readme', dest='no_table', action='store_true',
                      help="leave the table in docs/performance.md as it is")
  parser.add_argument('--out_dir', default=OUT_DIR, help='default .local/bench')
  parser.add_argument('--redo', type=lambda text: [k for k in text.split(',') if k],
                      help='comma-separated step keys to measure again; the other steps '
                      'come from --previous')
  parser.add_argument('--previous', default=os.path.join(OUT_DIR, 'latest.json'),
                      help='the results file --redo completes (default .local/bench/latest.json)')
  args = parser.parse_args(argv)
  if args.redo:
    keys = {s.key for s in plan.steps_of(args.plan)}
    unknown = sorted(set(args.redo) - keys)
    if unknown:
      parser.error(f'--redo: no such step in the {args.plan} plan: {", ".join(unknown)}')
    try:
      with open(args.previous, encoding='utf-8') as handle:
        args.previous_doc = json.load(handle)
    except (OSError, ValueError) as error:
      parser.error(f'--previous: cannot read {args.previous}: {error}')
  return args


def redo_plan(plan_name: str, redo: Sequence[str], previous: Dict) -> Tuple[List[plan.Step],
                                                                            List[Dict]]:
  """(the plan's steps named in redo, every other step's result from the previous run in
  the plan's order)."""
  steps = plan.steps_of(plan_name)
  earlier = {s['key']: s for s in previous.get('steps', [])}
  kept = [earlier[s.key] for s in steps if s.key not in redo and s.key in earlier]
  return [s for s in steps if s.key in redo], kept


def _interrupt(signum, frame):
  raise KeyboardInterrupt(f'signal {signum}')


def measure_all(steps: Sequence[plan.Step], args: argparse.Namespace, addresses: Dict[str, str],
                budget: Budget, doc: Dict, log: Callable[[str], None]) -> List[Dict]:
  """Starts the services the plan needs, runs it, stops what it started (also on Ctrl-C or
  SIGTERM, or when a service does not start: then doc['error'] says why). The results of
  the steps that ended."""
  services = Services()
  results: List[Dict] = []
  previous = signal.signal(signal.SIGTERM, _interrupt)
  try:
    for script, env in services_for(steps, args.kafka_port, args.expansion_port):
      log(f'bench: ensuring runners/{script}' + (f' with {env}' if env else ''))
      services.ensure(script, env=env)
    execute = executor(addresses, log)
    if any(s.mode == 'cluster' for s in steps):
      doc['machine']['versions']['flink_cluster'] = cluster_version()
      doc['cluster_warmup'] = warm_up(execute, budget, log)
    for entry in run_plan(steps, execute, budget, log):
      results.append(entry)
  except KeyboardInterrupt as stop:
    doc['interrupted'] = str(stop) or 'Ctrl-C'
  except Exception as error:  # pylint: disable=broad-except  (the run still reports)
    doc['error'] = f'{type(error).__name__}: {error}'
  finally:
    doc['services_started'] = list(services.started)
    if services.started:
      log(f'bench: stopping what it started: {", ".join(reversed(services.started))}')
    services.stop_started()
    signal.signal(signal.SIGTERM, previous)
  return results


def main(argv: Optional[Sequence[str]] = None) -> int:
  args = parse_args(argv)

  def log(line: str) -> None:
    print(line, flush=True)

  steps, dropped, budget_min = plan.build(args.plan, args.budget_min)
  if args.redo:  # no budget cut: the steps asked for, the rest as measured before
    steps, dropped = redo_plan(args.plan, args.redo, args.previous_doc)
  addresses = {'bootstrap': f'127.0.0.1:{args.kafka_port}',
               'expansion_service': f'localhost:{args.expansion_port}',
               'flink_master': FLINK_MASTER}
  started = datetime.now(timezone.utc)
  doc: Dict = {'bench': 'make bench (issue 6)', 'plan': args.plan, 'stamp': utc_stamp(started),
               'started_at': started.isoformat(timespec='seconds'), 'budget_min': budget_min,
               'estimated_min': round(plan.estimate_s(steps) / 60, 1),
               'addresses': addresses,
               'machine': machine.details()}
  if args.redo:
    doc['redo'] = {'steps': list(args.redo), 'others_from': args.previous_doc.get('started_at')}
    log(f"bench: measuring again {[s.key for s in steps]}, ~{doc['estimated_min']:.0f} min; "
        f"the other {len(dropped)} steps as measured in the run of {doc['redo']['others_from']}")
  else:
    log(f"bench: plan {args.plan}: {len(steps)} steps, ~{doc['estimated_min']:.0f} min "
        f'(budget {budget_min:g} min)' + (f'; left out: {[d["key"] for d in dropped]}'
                                          if dropped else ''))
  budget = Budget(budget_min * 60)
  results = measure_all(steps, args, addresses, budget, doc, log)
  done = {r['key'] for r in results}
  reason = doc.get('error') or doc.get('interrupted') or 'not run'
  results += [dict(plan.describe(s), status='failed' if 'error' in doc else 'skipped',
                   reason=reason, max_rps=None, trials=[])
              for s in steps if s.key not in done]
  if args.redo:  # back in the plan's order
    order = {s.key: i for i, s in enumerate(plan.steps_of(args.plan))}
    results = sorted(results + dropped, key=lambda s: order[s['key']])
  else:
    results += dropped
  doc['machine']['loadavg_after'] = list(os.getloadavg())
  doc['seconds'] = round(budget.elapsed())
  finish(doc, results)
  path = write_results(doc, args.out_dir)
  table_note = None if args.no_table else update_table(doc)
  for line in report.summary(doc):
    log(line)
  log(f'bench: results in {os.path.relpath(path, ROOT)}'
      + (f'; {table_note}' if table_note else
         '' if args.no_table else '; the table in docs/performance.md updated'))
  log(doc['last_line'])
  measured = any('verdict' in t for r in results for t in r.get('trials', []))
  return 0 if measured else 1


if __name__ == '__main__':
  sys.exit(main())
