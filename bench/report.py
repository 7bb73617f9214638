"""The figures of a `make bench` run, from its step results: headline, ratios, targets, the
last line, the human summary and the table of docs/performance.md. Pure: bench.run gathers, this judges.

A figure that was not measured is None together with the reason, never a guess: a step that
was skipped or failed, a search in which no rate was sustained, a latency trial in which no
alert of a measured reading arrived in time. A search in which every rate tried was
sustained only shows that the job sustains at least that much: `lower_bound`.
"""

from typing import Dict, List, Optional, Sequence, Tuple

from bench.plan import HEADLINE, LATENCY_RATE

MARKER_START = '<!-- bench:table:start (written by make bench: edits in here are overwritten) -->'
MARKER_END = '<!-- bench:table:end -->'
TARGETS = {'max_rps': 20_000, 'p99_ms': 2_000, 'vs_beam_zscore': 2.0}
# "Memory flat": over the ten-minute trial no process's RSS grows by more than this after
# the warmup, i.e. at most 10 MB in ten minutes.
FLAT_MB_PER_MIN = 1.0
JOB_NAMES = {'anomaly': 'ours', 'java': 'original Java job', 'beam_zscore': 'Beam ZScore'}


def _figure(value, reason: Optional[str] = None, **extra) -> Dict:
  return {'value': value, 'reason': None if value is not None else reason, **extra}


def _errors(trials: Sequence[Dict]) -> List[str]:
  return [t['error'] for t in trials if t.get('error')]


def trial_at(step: Dict, rate: Optional[float]) -> Optional[Dict]:
  """The step's trial at that offered rate (the last one, if tried twice)."""
  found = [t for t in step.get('trials', ()) if rate is not None and t.get('offered_rps') == rate]
  return found[-1] if found else None


def sustained(trial: Dict) -> bool:
  return bool((trial.get('verdict') or {}).get('bounded'))


def max_rate(step: Optional[Dict]) -> Dict:
  """{'value', 'reason', 'lower_bound'} of a search step's highest sustained rate."""
  if step is None:
    return _figure(None, 'not in the plan')
  if step['status'] in ('skipped', 'failed') and not step.get('trials'):
    return _figure(None, step.get('reason') or step['status'])
  trials = step.get('trials', [])
  if step.get('max_rps') is not None:
    lower = all(sustained(t) for t in trials)
    return _figure(step['max_rps'], lower_bound=lower)
  errors = _errors(trials)
  if errors and len(errors) == len(trials):
    return _figure(None, f'every trial failed: {errors[0][:300]}')
  tried = sorted(t['offered_rps'] for t in trials)
  lowest = trial_at(step, tried[0]) if tried else None
  why = (lowest.get('verdict') or {}).get('reason') or lowest.get('error') if lowest else None
  return _figure(None, f'not sustained at any rate tried ({", ".join(f"{r:.0f}" for r in tried)}'
                 f' readings/s); at the lowest: {why}')


def latency(trial: Optional[Dict], what: str) -> Dict:
  """{'p50_ms': figure, 'p99_ms': figure, 'sustained'} of one trial."""
  if trial is None or trial.get('error'):
    reason = (f'{what}: the trial failed: {trial["error"][:300]}' if trial
              else f'{what}: no trial')
    return {'p50_ms': _figure(None, reason), 'p99_ms': _figure(None, reason),
            'sustained': None, 'note': None}
  summary = trial.get('latency') or {}
  verdict = trial.get('verdict') or {}
  reason = None
  if not summary.get('alerts'):
    behind = ''
    if verdict.get('consumed_rps'):
      behind = f', {verdict["lag_end"] / verdict["consumed_rps"]:.0f} s behind at the end'
    reason = (f'{what}: no alert of a measured reading arrived within the '
              f'{summary.get("horizon_s", 0):.0f} s horizon'
              f'{" (not sustained" + behind + ")" if not sustained(trial) else ""}')
  note = None
  if summary.get('alerts') and not sustained(trial):
    note = ('not sustained: only the alerts that came within the horizon count, so the '
            'true latencies are higher')
  elif summary.get('alerts') and summary['max_ms'] >= 900 * summary.get('horizon_s', 0):
    note = 'the slowest alerts came near the horizon: later ones may be missing'
  return {'p50_ms': _figure(summary.get('p50_ms'), reason),
          'p99_ms': _figure(summary.get('p99_ms'), reason),
          'alerts': summary.get('alerts', 0), 'horizon_s': summary.get('horizon_s'),
          'sustained': sustained(trial), 'note': note}


def memory_trend(step: Optional[Dict]) -> Dict:
  """Each process's RSS slope after the warmup of the ten-minute trial (memory_cluster,
  in both plans)."""
  if step is None:
    return _figure(None, 'not in the plan (memory_cluster: the ten-minute trial)')
  trials = step.get('trials') or []
  if not trials or trials[-1].get('error'):
    return _figure(None, (trials[-1]['error'] if trials else step.get('reason')) or 'no trial')
  rows = trials[-1].get('rss_trend') or None
  return _figure(rows, 'fewer than 3 RSS points after the warmup',
                 rate=trials[-1].get('offered_rps'), sustained=sustained(trials[-1]))


def memory_growth(figure: Dict) -> Optional[Dict[str, float]]:
  """{'label:pid': RSS MB/min} of every process of the ten-minute trial, on which "memory
  flat" is judged; None without that trial."""
  if figure['value'] is None:
    return None
  return {f"{r['label']}:{r['pid']}": r['mb_per_min'] for r in figure['value']}


def ratio(ours: Dict, theirs: Dict, name: str) -> Dict:
  """ours / theirs of two max-rate figures; n/a (None and why) when either is missing."""
  if ours['value'] is None:
    return _figure(None, f'our max_rps is not known: {ours["reason"]}')
  if theirs['value'] is None:
    return _figure(None, f'{name} max_rps is not known: {theirs["reason"]}')
  note = None
  if theirs.get('lower_bound') and not ours.get('lower_bound'):
    note = f'{name} sustained every rate tried: the ratio is an upper bound'
  elif ours.get('lower_bound') and not theirs.get('lower_bound'):
    note = 'ours sustained every rate tried: the ratio is a lower bound'
  elif ours.get('lower_bound') and theirs.get('lower_bound'):
    note = 'both sustained every rate tried: the ratio compares lower bounds'
  return _figure(ours['value'] / theirs['value'], note=note)


def figures(steps: Dict[str, Dict]) -> Dict:
  """The headline: our max sustained rate on the cluster, the latency at 5,000/s and at our
  max, and the ratios to both baselines (bench.plan.HEADLINE names the steps)."""
  ours = max_rate(steps.get(HEADLINE['ours']))
  java = max_rate(steps.get(HEADLINE['java']))
  zscore = max_rate(steps.get(HEADLINE['zscore']))
  latency_step = steps.get(HEADLINE['latency'])
  at_latency_rate = latency(trial_at(latency_step, LATENCY_RATE) if latency_step else None,
                            f'at {LATENCY_RATE:.0f}/s')
  ours_step = steps.get(HEADLINE['ours']) or {}
  return {'max_rps': ours, 'java_max_rps': java, 'beam_zscore_max_rps': zscore,
          'memory_trend_mb_per_min': memory_trend(steps.get('memory_cluster')),
          'latency_at_5000': at_latency_rate,
          'latency_at_max': latency(trial_at(ours_step, ours['value']), 'at our max'),
          'vs_java': ratio(ours, java, 'the original Java job'),
          'vs_beam_zscore': ratio(ours, zscore, 'Beam ZScore')}


def targets(figs: Dict) -> Dict[str, Dict]:
  """Each target of issue 6: met, missed, or unknown (with the figure it was judged on)."""
  def judge(value, ok: bool) -> str:
    return 'unknown' if value is None else ('met' if ok else 'missed')
  max_rps = figs['max_rps']['value']
  p99 = figs['latency_at_5000']['p99_ms']['value']
  held = figs['latency_at_5000']['sustained']
  vs = figs['vs_beam_zscore']['value']
  growth = memory_growth(figs['memory_trend_mb_per_min'])
  steepest = max(growth.values()) if growth else None
  memory_state = judge(steepest, steepest is not None and steepest <= FLAT_MB_PER_MIN
                       and bool(figs['memory_trend_mb_per_min'].get('sustained')))
  p99_state = judge(p99, p99 is not None and p99 <= TARGETS['p99_ms'] and bool(held))
  if held is False:
    p99_state = 'missed'  # 5,000/s not sustained: latency grows without bound
  return {
      'max_rps >= 20,000 readings/s': {'value': max_rps, 'state': judge(
          max_rps, max_rps is not None and max_rps >= TARGETS['max_rps'])},
      'p99 <= 2,000 ms at 5,000 readings/s': {'value': p99, 'sustained': held,
                                              'state': p99_state},
      '>= 2x Beam ZScore': {'value': vs, 'state': judge(
          vs, vs is not None and vs >= TARGETS['vs_beam_zscore'])},
      'memory flat over 10 min': {'value': growth, 'state': memory_state},
  }


def fmt_int(value) -> str:
  return 'n/a' if value is None else str(int(round(value)))


def fmt_ratio(value) -> str:
  return 'n/a' if value is None else f'{value:.3g}'


def last_line(figs: Dict) -> str:
  return (f"bench: max_rps={fmt_int(figs['max_rps']['value'])} "
          f"p99_ms={fmt_int(figs['latency_at_5000']['p99_ms']['value'])} "
          f"vs_java={fmt_ratio(figs['vs_java']['value'])} "
          f"vs_beam_zscore={fmt_ratio(figs['vs_beam_zscore']['value'])}")


def _thousands(value) -> str:
  return 'n/a' if value is None else f'{value:,.0f}'


def rss_cell(trial: Optional[Dict], top: int = 4) -> str:
  """'taskmanager×2 2,100, jobmanager 800, ...': each kind of process's largest peak (MB)."""
  if not trial or not trial.get('rss'):
    return 'n/a'
  largest: Dict[str, Tuple[float, int]] = {}
  for row in trial['rss']:
    peak, count = largest.get(row['label'], (0.0, 0))
    largest[row['label']] = (max(peak, row['peak_mb']), count + 1)
  ordered = sorted(largest.items(), key=lambda item: -item[1][0])[:top]
  return ', '.join(f'{label}{"×" + str(n) if n > 1 else ""} {peak:,.0f}'
                   for label, (peak, n) in ordered)


def _latency_cell(trial: Optional[Dict]) -> str:
  summary = (trial or {}).get('latency') or {}
  if not summary.get('alerts'):
    return 'n/a'
  return f"{_thousands(summary['p50_ms'])} / {_thousands(summary['p99_ms'])}"


def _short(text: Optional[str], limit: int = 160) -> str:
  text = ' '.join((text or '').split()).replace('|', '/')
  return text if len(text) <= limit else text[:limit - 1] + '…'


def row_of(step: Dict) -> List[str]:
  """One table row: what, job, Flink, sensors, p, readings/s, p50 / p99 ms, CPU ms/reading,
  peak RSS MB, note."""
  trials = step.get('trials', [])
  note = ''
  if step['purpose'] in ('max',) or step.get('search'):
    figure = max_rate(step)
    trial = trial_at(step, figure['value'])
    rate = ('≥ ' if figure.get('lower_bound') else '') + _thousands(figure['value'])
    if figure['value'] is None:
      note = figure['reason']
    what = 'max sustained' if step['purpose'] == 'max' else f"{step['purpose']}: max sustained"
  else:
    trial = trials[-1] if trials else None
    rate = _thousands(trial.get('offered_rps')) if trial else 'n/a'
    if trial and not trial.get('error'):
      rate += ' (sustained)' if sustained(trial) else ' (NOT sustained)'
    what = {'latency': 'latency', 'cost': 'cost', 'memory': 'memory, 10 min'}[step['purpose']]
    if trial and trial.get('error'):
      note = f"failed: {trial['error']}"
    elif trial and step['purpose'] == 'latency':
      figure = latency(trial, 'latency')
      note = figure['p99_ms']['reason'] or figure['note'] or ''
    elif trial and step['purpose'] == 'memory':
      note = 'RSS trend MB/min: ' + ', '.join(
          f"{r['label']} {r['mb_per_min']:+.1f}" for r in trial.get('rss_trend', [])[:4])
  others = (trial or {}).get('other_jobs_on_cluster')
  if isinstance(others, int) and others:
    note = (note + '; ' if note else '') + f'{others} other job(s) ran on the cluster'
  if step['status'] == 'skipped' or (step['status'] == 'failed' and not trials):
    note = step.get('reason') or step['status']
  elif step.get('stopped'):
    note = (note + '; ' if note else '') + step['stopped']
  cpu = ((trial or {}).get('cpu') or {}).get('cpu_ms_per_reading')
  if step.get('job_args'):
    what += ' (' + ' '.join(f'`{arg}`' for arg in step['job_args']) + ')'
  return [what, JOB_NAMES.get(step['job'], step['job']), step['mode'],
          f"{step['sensors']:,}", str(step['parallelism']), rate, _latency_cell(trial),
          'n/a' if cpu is None else f'{cpu:.2f}', rss_cell(trial), _short(note)]


def table(doc: Dict) -> str:
  """The table block: when and where, the last line, and one row per step."""
  machine = doc.get('machine', {})
  head = (f"Run {doc.get('started_at', '?')}, plan `{doc.get('plan')}` "
          f"({doc.get('seconds', 0) / 60:.0f} min), {machine.get('cores', '?')} cores "
          f"({machine.get('cpu_model') or 'unknown CPU'}), "
          f"{_thousands(machine.get('memory_mb'))} MB, load average "
          f"{_load(machine.get('loadavg_before'))} before, "
          f"{_load(machine.get('loadavg_after'))} after. Last line: `{doc.get('last_line')}`")
  header = ['what', 'job', 'Flink', 'sensors', 'p', 'readings/s', 'p50 / p99 ms',
            'CPU ms/reading', 'peak RSS MB', 'note']
  redo = doc.get('redo')
  if redo:
    head += (f". Steps {', '.join(redo['steps'])} re-measured in this run; the others are "
             f"from the run of {redo['others_from']}.")
  lines = [head, '', '| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  for step in doc.get('steps', []):
    lines.append('| ' + ' | '.join(row_of(step)) + ' |')
  return '\n'.join(lines)


def _load(values) -> str:
  return '/'.join(f'{v:.1f}' for v in values) if values else 'n/a'


def replace_table(text: str, block: str) -> str:
  """text with everything between the two marker lines replaced by block; the rest of the
  text is left byte for byte. ValueError when the markers are not there once each, in order."""
  if text.count(MARKER_START) != 1 or text.count(MARKER_END) != 1:
    raise ValueError('the page needs exactly one of each bench table marker')
  start = text.index(MARKER_START) + len(MARKER_START)
  end = text.index(MARKER_END)
  if end < start:
    raise ValueError('the bench table end marker comes before the start marker')
  return text[:start] + '\n' + block.strip('\n') + '\n' + text[end:]


def summary(doc: Dict) -> List[str]:
  """Human-readable lines: each step's outcome, the headline figures and the targets."""
  lines = [f"bench: plan {doc.get('plan')}, {len(doc.get('steps', []))} steps, "
           f"{doc.get('seconds', 0) / 60:.0f} min (budget {doc.get('budget_min')} min)"]
  for step in doc.get('steps', []):
    cells = row_of(step)
    lines.append(f'  {step["key"]}: {cells[5]} readings/s; p50/p99 {cells[6]} ms; '
                 f'CPU {cells[7]} ms/reading; RSS {cells[8]}'
                 + (f'; {cells[9]}' if cells[9] else ''))
  figs = doc['figures']
  for name in ('max_rps', 'java_max_rps', 'beam_zscore_max_rps', 'vs_java', 'vs_beam_zscore'):
    figure = figs[name]
    extra = figure.get('note') or figure['reason'] or ''
    bound = ' (lower bound)' if figure.get('lower_bound') else ''
    value = fmt_ratio(figure['value']) if name.startswith('vs_') else _thousands(figure['value'])
    lines.append(f'  {name}: {value}{bound}' + (f' - {extra}' if extra else ''))
  for name in ('latency_at_5000', 'latency_at_max'):
    figure = figs[name]
    reason = figure['p99_ms']['reason']
    why = reason or figure['note']
    lines.append(f"  {name}: p50 {_thousands(figure['p50_ms']['value'])} ms, p99 "
                 f"{_thousands(figure['p99_ms']['value'])} ms"
                 + ('' if figure['sustained'] is not False else ' (rate NOT sustained)')
                 + (f' - {why}' if why else ''))
  for name, target in doc['targets'].items():
    lines.append(f"  target {name}: {target['state']}")
  return lines
