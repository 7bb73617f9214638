"""What `make bench` measures, in which order, and how long that should take.

A plan is a list of steps in priority order; each step is one job on one Flink (embedded or
the standalone cluster) with one number of sensors and one parallelism, measured either by
a search for its highest sustained rate (bench.measure.search) or by trials at fixed rates.

  quick (default, ~65 min): our job's highest sustained rate on the cluster and embedded
        (1,000 sensors; parallelism 2 on the cluster, one per core, and 1 embedded, where the
        Python workers share one process; three trials each: a bracket, not a precise figure),
        the two baselines' (the original Java job, Beam's ZScore) on the cluster, two
        trials each, one trial at 5,000 readings/s for alert latency, the 10-minute memory
        trend on the cluster, and the cost matrix (100 / 10,000 / 100,000
        sensors x parallelism 1 / 2) as single trials at COST_RATE reporting CPU per reading
        and RSS;
  full  (~4.5 h): searches to 15 % everywhere (baselines also embedded), latency on both
        Flinks (and on the cluster without the baseline lag), the cost matrix as searches on
        both, and a 10-minute trial of the memory trend; on the cluster every step but the
        cost matrix at CLUSTER_PARALLELISM, as in the quick plan.

The headline figures (bench.report) come from the steps named in HEADLINE, in both plans:
all on the cluster, where the original job runs, so that every ratio compares like with like.

fit() keeps a plan within a time budget: it leaves out steps from the end (the lowest
priority) down to the headline's, then shortens searches (down to one trial); what it left
out is reported, never silently lost. The
estimates are TRIAL_OVERHEAD_S (job start and teardown, ~26 s measured plus process start)
plus each trial's warmup, measuring window and drain.
"""

from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

PLANS = ('quick', 'full')
DEFAULT_BUDGET_MIN = {'quick': 70, 'full': 270}
TRIAL_OVERHEAD_S = 40.0
TIMEOUT_MARGIN_S = 300.0  # a trial gets its estimate plus this before it is killed
LATENCY_RATE = 5000.0
COST_RATE = 400.0  # sustained by our job at every size tried so far
COST_SENSORS = (100, 10_000, 100_000)
CLUSTER_PARALLELISM = 2  # the quick plan's, on this 2-core machine
HEADLINE = {'ours': 'ours_cluster', 'java': 'java_cluster', 'zscore': 'zscore_cluster',
            'latency': 'latency_cluster'}


class Step(NamedTuple):
  key: str  # unique in the plan; the results are filed under it
  purpose: str  # max | latency | cost | memory
  job: str  # anomaly | beam_zscore | java (bench/job.py)
  mode: str  # embedded | cluster
  sensors: int = 1000
  parallelism: int = 1
  search: bool = True  # else trials at `rates`
  rates: Tuple[float, ...] = ()
  start: float = 1000.0
  factor: float = 2.0
  resolution: float = 0.15
  max_trials: int = 6
  warmup: float = 75.0
  measure: float = 60.0
  drain: float = 20.0
  latency_tail: float = 30.0  # with drain: alerts up to 50 s late are seen
  spike_interval: float = 150.0
  # A step whose result sets this one's rate: its max_rps x rate_fraction replaces `start`
  # (search) or the rate (fixed); without a result, start/rates stand.
  start_from: Optional[str] = None
  rate_fraction: float = 1.0
  rss_series: bool = False
  job_args: Tuple[str, ...] = ()  # options of the job under test, beyond the bench's own


# Run before the first cluster step and not reported: the cluster's JVMs compile the job's
# hot paths during their first minutes (a first trial at 20,000 readings/s on a fresh
# cluster read 4,000-8,000/s for its first 50 s, later ones 24,000-30,000/s), and a
# TaskManager in production is long past that.
CLUSTER_WARMUP = Step('warmup_cluster', 'warmup', 'anomaly', 'cluster',
                      parallelism=CLUSTER_PARALLELISM, search=False, rates=(10000.0,),
                      warmup=30.0, measure=30.0, drain=0.0, latency_tail=0.0)


def trial_seconds(step: Step) -> float:
  return TRIAL_OVERHEAD_S + step.warmup + step.measure + step.drain


def trial_count(step: Step) -> int:
  return step.max_trials if step.search else len(step.rates)


def estimate_s(steps: Sequence[Step]) -> float:
  return sum(trial_count(s) * trial_seconds(s) for s in steps)


def cost_spike_interval(sensors: int, rate: float) -> float:
  """About one reading in a hundred a spike: with 100,000 sensors a sensor gets a reading
  every few minutes, and one spike per sensor per 150 s would make every other one a spike."""
  return max(150.0, 100 * sensors / rate)


def _cost_steps(mode: str, search: bool) -> List[Step]:
  steps = []
  for parallelism in (1, 2):
    for sensors in COST_SENSORS:
      if search:
        step = Step(f'cost_{mode}_s{sensors}_p{parallelism}', 'cost', 'anomaly', mode, sensors,
                    parallelism, start=500.0, resolution=0.25, max_trials=4, drain=0.0,
                    latency_tail=0.0, spike_interval=cost_spike_interval(sensors, 500.0),
                    start_from=f'ours_{mode}')
      else:
        step = Step(f'cost_{mode}_s{sensors}_p{parallelism}', 'cost', 'anomaly', mode, sensors,
                    parallelism, search=False, rates=(COST_RATE,), warmup=70.0, measure=40.0,
                    drain=0.0, latency_tail=0.0,
                    spike_interval=cost_spike_interval(sensors, COST_RATE))
      steps.append(step)
  return steps


def _latency(mode: str) -> Step:
  # At an unsustainable rate nothing measured arrives within any drain; at a sustained one
  # 20 s of tail and 30 s of drain let alerts up to 50 s late count.
  return Step(f'latency_{mode}', 'latency', 'anomaly', mode, search=False,
              rates=(LATENCY_RATE,), warmup=80.0, drain=30.0, latency_tail=20.0)


def _memory(rates: Tuple[float, ...] = (300.0,)) -> Step:
  """Ten minutes at 70 % of the sustained rate: memory that keeps growing shows as a slope."""
  return Step('memory_cluster', 'memory', 'anomaly', 'cluster', search=False, rates=rates,
              warmup=80.0, measure=600.0, drain=0.0, latency_tail=0.0,
              start_from='ours_cluster', rate_fraction=0.7, rss_series=True)


def quick_plan() -> List[Step]:
  # Starts at rates sustained in earlier runs (ours: 20,000 readings/s on the cluster,
  # single trials); our job gets a third trial to halve its bracket. On the cluster every
  # job runs at CLUSTER_PARALLELISM, one subtask (and for Beam one Python worker) per core.
  bracket = {'resolution': 0.5, 'max_trials': 2}
  on_cluster = {'parallelism': CLUSTER_PARALLELISM}
  return [
      Step('ours_cluster', 'max', 'anomaly', 'cluster', start=20000.0, resolution=0.25,
           max_trials=3, **on_cluster),
      Step('java_cluster', 'max', 'java', 'cluster', start=20000.0, **bracket, **on_cluster),
      # ZScore read 560 readings/s at 1,000 offered (parallelism 1, 2026-12-03): starting
      # at 500 brackets it in two trials.
      Step('zscore_cluster', 'max', 'beam_zscore', 'cluster', start=500.0, **bracket,
           **on_cluster),
      _latency('cluster')._replace(**on_cluster),
      Step('ours_embedded', 'max', 'anomaly', 'embedded', start=20000.0, resolution=0.25,
           max_trials=3),
      _memory()._replace(**on_cluster),
      # Latency without the default baseline lag: the first readings after each window end
      # wait for that window's statistics.
      _latency('cluster')._replace(key='latency_cluster_lag', job_args=('--baseline_lag=0',),
                                   **on_cluster),
      *_cost_steps('embedded', search=False),
  ]


def full_plan() -> List[Step]:
  # The cluster steps at the quick plan's parallelism (the cost matrix runs both), so that
  # the two plans' headline figures measure the same thing.
  on_cluster = {'parallelism': CLUSTER_PARALLELISM}
  return [
      Step('ours_cluster', 'max', 'anomaly', 'cluster', start=500.0, **on_cluster),
      Step('java_cluster', 'max', 'java', 'cluster', start=5000.0, **on_cluster),
      Step('zscore_cluster', 'max', 'beam_zscore', 'cluster', start=250.0, **on_cluster),
      _latency('cluster')._replace(**on_cluster),
      Step('ours_embedded', 'max', 'anomaly', 'embedded', start=1000.0),
      Step('zscore_embedded', 'max', 'beam_zscore', 'embedded', start=250.0),
      _latency('embedded'),
      _memory()._replace(**on_cluster),
      _latency('cluster')._replace(key='latency_cluster_lag', job_args=('--baseline_lag=0',),
                                   **on_cluster),
      *_cost_steps('embedded', search=True),
      *_cost_steps('cluster', search=True),
  ]


def fit(steps: Sequence[Step], budget_s: float) -> Tuple[List[Step], List[Dict]]:
  """(the steps that fit budget_s, the results of those left out: skipped, with the
  reason). Steps go from the
  end (the lowest priority) until only the headline's are left; then searches are shortened,
  the longest first, down to one trial; then headline steps go too, from the end."""
  kept = list(steps)
  dropped: List[Dict] = []

  def drop(index: int) -> None:
    step = kept.pop(index)
    dropped.insert(0, dict(describe(step), status='skipped', max_rps=None, trials=[], reason=(
        f'left out: the plan did not fit the {budget_s / 60:.0f} min budget '
        f'(this step: ~{trial_count(step) * trial_seconds(step) / 60:.0f} min)')))

  while kept and estimate_s(kept) > budget_s:
    others = [i for i, s in enumerate(kept) if s.key not in HEADLINE.values()]
    longer = [i for i, s in enumerate(kept) if s.search and s.max_trials > 1]
    if others:
      drop(others[-1])
    elif longer:
      i = max(longer, key=lambda k: (kept[k].max_trials, k))
      kept[i] = kept[i]._replace(max_trials=kept[i].max_trials - 1)
    else:
      drop(len(kept) - 1)
  return kept, dropped


def steps_of(name: str) -> List[Step]:
  """Every step of the named plan, in priority order."""
  if name not in PLANS:
    raise ValueError(f'plan must be one of {PLANS}, got {name!r}')
  return quick_plan() if name == 'quick' else full_plan()


def build(name: str, budget_min: Optional[float] = None) -> Tuple[List[Step], List[Dict], float]:
  """(steps, dropped, budget in minutes) of the named plan under the budget (default: the
  plan's own, DEFAULT_BUDGET_MIN)."""
  steps = steps_of(name)
  budget = DEFAULT_BUDGET_MIN[name] if budget_min is None else budget_min
  kept, dropped = fit(steps, budget * 60)
  return kept, dropped, budget


def resolve_rate(step: Step, results: Dict[str, Dict]) -> Tuple[float, List[float]]:
  """(search start, fixed rates) of a step, from the result named in start_from if it has
  a max_rps."""
  source = results.get(step.start_from or '', {}).get('max_rps')
  if not source:
    return step.start, list(step.rates)
  rate = round(source * step.rate_fraction, -1) or source * step.rate_fraction
  return (rate, list(step.rates)) if step.search else (step.start, [rate] * len(step.rates))


def trial_args(step: Step, bootstrap: str, expansion_service: str,
               flink_master: str) -> List[str]:
  """bench.trial's options for the step's trials (the rate comes from the search)."""
  args = ['--job', step.job, '--mode', step.mode, '--sensors', str(step.sensors),
          '--parallelism', str(step.parallelism), '--warmup', str(step.warmup),
          '--measure', str(step.measure), '--drain', str(step.drain),
          '--latency_tail', str(step.latency_tail), '--spike_interval', str(step.spike_interval),
          '--bootstrap', bootstrap, '--expansion_service', expansion_service,
          '--flink_master', flink_master]
  return args + (['--rss_series'] if step.rss_series else [])


def describe(step: Step) -> Dict:
  """The step as the results file records it."""
  out = step._asdict()
  out['rates'] = list(step.rates)
  out['job_args'] = list(step.job_args)
  out['max_trials'] = trial_count(step)
  out['estimate_s'] = round(trial_count(step) * trial_seconds(step))
  return out
