"""Unit tests of `make bench`'s orchestration (bench/run.py, plan.py, report.py): the plan
under a budget, the figures and their last line, the table in docs/performance.md, the
results file. No
Kafka, no Flink, no JVM: services, trials and the machine's details are faked."""

import json

import pytest

from bench import machine, measure, plan, report, run

# --- fakes ---


def trial(rate, bounded=True, p50=19_000, p99=25_000, alerts=40, cpu=1.4, error=None,
          lag_end=1_000):
  """A trial report as bench.trial writes it (only the fields the report reads)."""
  if error:
    return {'offered_rps': rate, 'error': error}
  return {'offered_rps': rate,
          'verdict': {'bounded': bounded, 'consumed_rps': rate if bounded else rate / 2,
                      'lag_end': lag_end, 'reason': 'lag 10 -> 12' if bounded else 'lag grows'},
          'latency': {'alerts': alerts, 'p50_ms': p50 if alerts else None,
                      'p99_ms': p99 if alerts else None, 'max_ms': p99 if alerts else None,
                      'horizon_s': 50.0},
          'cpu': {'cpu_ms_per_reading': cpu},
          'rss': [{'pid': 11, 'label': 'taskmanager', 'peak_mb': 2100.4},
                  {'pid': 12, 'label': 'taskmanager', 'peak_mb': 700.0},
                  {'pid': 13, 'label': 'jobmanager', 'peak_mb': 800.0}]}


def step_result(key, trials, max_rps, status='done', reason=None, **fields):
  base = dict(plan.describe(plan.Step(key, 'max', 'anomaly', 'cluster')), **fields)
  return dict(base, status=status, reason=reason, max_rps=max_rps, trials=trials)


def headline_steps(java_trials=None, java_max=20_000.0, java_status='done'):
  """ours: 500/s sustained, 1,000/s not; Java: 5,000 and 20,000 sustained (a lower bound);
  ZScore: 1,000 sustained, 2,000 not; latency trial at 5,000/s not sustained, no alerts."""
  if java_trials is None:
    java_trials = [trial(5000.0), trial(20_000.0)]
  steps = [
      step_result('ours_cluster', [trial(500.0), trial(1000.0, bounded=False)], 500.0),
      step_result('java_cluster', java_trials, java_max, status=java_status, job='java'),
      step_result('zscore_cluster', [trial(1000.0), trial(2000.0, bounded=False)], 1000.0,
                  job='beam_zscore'),
      step_result('latency_cluster', [trial(5000.0, bounded=False, alerts=0, lag_end=90_000)],
                  None, purpose='latency', search=False, rates=[5000.0]),
  ]
  return {s['key']: s for s in steps}


# --- the plan under a budget ---

def test_default_quick_plan_fits_its_budget_with_every_part_the_issue_asks_for():
  steps, dropped, budget = plan.build('quick')
  assert budget == 70 and not dropped
  assert plan.estimate_s(steps) <= 70 * 60
  keys = [s.key for s in steps]
  assert keys[:6] == ['ours_cluster', 'java_cluster', 'zscore_cluster', 'latency_cluster',
                      'ours_embedded', 'memory_cluster']
  cost = [(s.sensors, s.parallelism) for s in steps if s.purpose == 'cost']
  assert sorted(cost) == [(100, 1), (100, 2), (10_000, 1), (10_000, 2), (100_000, 1),
                          (100_000, 2)]
  assert all(not s.search for s in steps if s.purpose in ('cost', 'latency'))
  # at 5,000 readings/s: the job as it is, and without its default baseline lag
  assert [(s.rates, s.job_args) for s in steps if s.purpose == 'latency'] == [
      ((5000.0,), ()), ((5000.0,), ('--baseline_lag=0',))]
  memory = [s for s in steps if s.purpose == 'memory']
  assert len(memory) == 1 and memory[0].measure == 600 and memory[0].rss_series


def test_full_plan_searches_everywhere_and_has_the_ten_minute_memory_trial():
  steps, dropped, _ = plan.build('full')
  assert not dropped
  memory = [s for s in steps if s.purpose == 'memory']
  assert len(memory) == 1 and memory[0].measure == 600 and memory[0].rss_series
  assert all(s.search for s in steps if s.purpose in ('max', 'cost'))
  assert {s.mode for s in steps if s.purpose == 'cost'} == {'embedded', 'cluster'}
  assert [s.key for s in steps if s.purpose == 'latency'] == [
      'latency_cluster', 'latency_embedded', 'latency_cluster_lag']


def test_both_plans_run_the_cluster_steps_at_the_cluster_parallelism():
  for name in plan.PLANS:
    steps = plan.steps_of(name)
    assert {s.parallelism for s in steps if s.mode == 'cluster' and s.purpose != 'cost'} == {
        plan.CLUSTER_PARALLELISM}, name


def test_a_smaller_budget_leaves_out_the_lowest_priority_steps_first():
  steps, dropped, _ = plan.build('quick', budget_min=40)
  # 63 -> 40 min: the six cost trials (6 x 150 s = 15 min) and the memory trial (12 min) go,
  # the searches stay whole
  assert [s.key for s in steps] == ['ours_cluster', 'java_cluster', 'zscore_cluster',
                                    'latency_cluster', 'ours_embedded']
  assert [s.max_trials for s in steps if s.search] == [3, 2, 2, 3]
  assert [d['key'] for d in dropped][:3] == ['memory_cluster', 'latency_cluster_lag',
                                              'cost_embedded_s100_p1']
  assert all(d['status'] == 'skipped' and '40 min budget' in d['reason'] for d in dropped)
  assert plan.estimate_s(steps) <= 40 * 60


def test_then_searches_shorten_the_longest_first_and_at_last_headline_steps_go():
  steps, _, _ = plan.build('quick', budget_min=20)
  # headline only: (3 + 2 + 2) trials x 195 s + 210 s = 1,575 s > 1,200 s; the longest
  # search is cut first, ours 3 -> 2 (1,380 s), then the last of the longest: zscore 2 -> 1
  # trial, 1,185 s
  assert [(s.key, plan.trial_count(s)) for s in steps] == [
      ('ours_cluster', 2), ('java_cluster', 2), ('zscore_cluster', 1), ('latency_cluster', 1)]
  steps, _, _ = plan.build('quick', budget_min=17)
  # 1,185 s > 1,020 s: java 2 -> 1 (990 s)
  assert [plan.trial_count(s) for s in steps] == [2, 1, 1, 1]
  steps, dropped, _ = plan.build('quick', budget_min=1)
  assert steps == [] and len(dropped) == 13


def test_resolve_rate_uses_an_earlier_max_or_keeps_the_default():
  memory = [s for s in plan.full_plan() if s.purpose == 'memory'][0]
  assert plan.resolve_rate(memory, {}) == (memory.start, [300.0])
  assert plan.resolve_rate(memory, {'ours_cluster': {'max_rps': 420.0}}) == (
      memory.start, [290.0])  # 0.7 x 420 = 294 -> 290
  cost = [s for s in plan.full_plan() if s.key == 'cost_embedded_s100_p1'][0]
  assert plan.resolve_rate(cost, {'ours_embedded': {'max_rps': 1410.0}}) == (1410.0, [])


def test_cost_trials_keep_spikes_rare_with_many_sensors():
  # 100,000 sensors at 400/s: 25,000 s between a sensor's spikes -> every 100th reading
  assert plan.cost_spike_interval(100_000, 400.0) == 25_000.0
  assert plan.cost_spike_interval(100, 400.0) == 150.0


def test_trial_args_carry_the_step_and_the_addresses():
  step = plan.quick_plan()[1]  # the Java baseline
  args = plan.trial_args(step, '127.0.0.1:9192', 'localhost:8197', 'localhost:8081')
  assert args[:4] == ['--job', 'java', '--mode', 'cluster']
  assert args[args.index('--bootstrap') + 1] == '127.0.0.1:9192'
  assert '--rss_series' not in args


# --- figures, ratios and the last line ---

def test_last_line_and_ratios():
  figs = report.figures(headline_steps())
  assert figs['max_rps']['value'] == 500.0 and not figs['max_rps']['lower_bound']
  assert figs['java_max_rps']['lower_bound']  # 20,000/s was sustained: at least that
  # 500 / 20,000 = 0.025 (an upper bound: the Java job may sustain more); 500 / 1,000 = 0.5
  assert figs['vs_java']['value'] == pytest.approx(0.025)
  assert 'upper bound' in figs['vs_java']['note']
  assert figs['vs_beam_zscore']['value'] == pytest.approx(0.5)
  assert report.last_line(figs) == (
      'bench: max_rps=500 p99_ms=n/a vs_java=0.025 vs_beam_zscore=0.5')


def test_a_failed_baseline_gives_n_a_not_a_crash():
  steps = headline_steps(java_trials=[trial(5000.0, error='exit 1: no original-job jar')],
                         java_max=None, java_status='failed')
  figs = report.figures(steps)
  assert figs['vs_java']['value'] is None
  assert 'every trial failed: exit 1: no original-job jar' in figs['vs_java']['reason']
  assert report.last_line(figs).endswith('vs_java=n/a vs_beam_zscore=0.5')


def test_a_skipped_baseline_and_a_missing_headline_step_are_n_a_with_reasons():
  steps = headline_steps()
  steps['zscore_cluster'] = step_result('zscore_cluster', [], None, status='skipped',
                                        reason='out of budget: 50 of 45 min used')
  del steps['ours_cluster']
  figs = report.figures(steps)
  assert figs['max_rps'] == {'value': None, 'reason': 'not in the plan'}
  assert figs['vs_beam_zscore']['value'] is None
  assert report.last_line(figs) == 'bench: max_rps=n/a p99_ms=n/a vs_java=n/a vs_beam_zscore=n/a'
  assert figs['beam_zscore_max_rps']['reason'] == 'out of budget: 50 of 45 min used'


def test_a_search_that_never_sustained_a_rate_says_so():
  steps = headline_steps()
  steps['ours_cluster'] = step_result(
      'ours_cluster', [trial(500.0, bounded=False), trial(250.0, bounded=False)], None)
  figure = report.figures(steps)['max_rps']
  assert figure['value'] is None
  assert figure['reason'].startswith('not sustained at any rate tried (250, 500 readings/s)')


def test_latency_at_an_unsustained_rate_without_alerts_is_missing_with_the_reason():
  figs = report.figures(headline_steps())
  at_5000 = figs['latency_at_5000']
  assert at_5000['p99_ms']['value'] is None and at_5000['sustained'] is False
  # lag 90,000 readings at 2,500 read/s = 36 s behind
  assert at_5000['p99_ms']['reason'] == (
      'at 5000/s: no alert of a measured reading arrived within the 50 s horizon '
      '(not sustained, 36 s behind at the end)')
  assert figs['latency_at_max']['p99_ms']['value'] == 25_000  # the trial at 500/s


def test_latency_of_survivors_at_an_unsustained_rate_is_flagged():
  steps = headline_steps()
  steps['latency_cluster']['trials'] = [trial(5000.0, bounded=False, p99=48_000)]
  figs = report.figures(steps)
  assert figs['latency_at_5000']['p99_ms']['value'] == 48_000
  assert 'true latencies are higher' in figs['latency_at_5000']['note']
  assert report.targets(figs)['p99 <= 2,000 ms at 5,000 readings/s']['state'] == 'missed'


def test_a_step_with_job_options_names_them_in_its_row():
  steps = headline_steps()
  lagged = dict(steps['latency_cluster'], key='latency_cluster_lag',
                job_args=['--baseline_lag=10'])
  assert report.row_of(lagged)[0] == 'latency (`--baseline_lag=10`)'
  assert report.row_of(steps['latency_cluster'])[0] == 'latency'


def test_memory_trend_comes_from_the_ten_minute_trial_of_the_full_plan():
  assert report.figures(headline_steps())['memory_trend_mb_per_min']['reason'].startswith(
      'not in the plan')
  steps = headline_steps()
  slopes = [{'pid': 11, 'label': 'taskmanager', 'mb_per_min': 0.4, 'points': 60}]
  steps['memory_cluster'] = step_result('memory_cluster', [dict(trial(290.0), rss_trend=slopes)],
                                        None, purpose='memory', search=False)
  figure = report.figures(steps)['memory_trend_mb_per_min']
  assert figure['value'] == slopes and figure['rate'] == 290.0 and figure['sustained']
  assert report.row_of(steps['memory_cluster'])[-1] == 'RSS trend MB/min: taskmanager +0.4'


def test_targets():
  figs = report.figures(headline_steps())
  states = {name: t['state'] for name, t in report.targets(figs).items()}
  assert states == {'max_rps >= 20,000 readings/s': 'missed',
                    'p99 <= 2,000 ms at 5,000 readings/s': 'missed',  # 5,000/s not sustained
                    '>= 2x Beam ZScore': 'missed',
                    'memory flat over 10 min': 'unknown'}  # no ten-minute trial
  steps = headline_steps()
  steps['latency_cluster']['trials'] = [trial(5000.0, p99=1_500)]
  steps['zscore_cluster']['max_rps'] = 200.0
  states = {name: t['state'] for name, t in report.targets(report.figures(steps)).items()}
  assert states['p99 <= 2,000 ms at 5,000 readings/s'] == 'met'
  assert states['>= 2x Beam ZScore'] == 'met'  # 500 / 200 = 2.5


def memory_step(rss_slopes, bounded=True):
  rss_trend = [{'pid': pid, 'label': label, 'mb_per_min': v, 'points': 60}
               for pid, (label, v) in enumerate(rss_slopes)]
  return step_result('memory_cluster', [dict(trial(9000.0, bounded=bounded), rss_trend=rss_trend)],
                     None, purpose='memory', search=False)


def test_memory_is_flat_when_no_process_grows_more_than_1_mb_a_minute():
  steps = headline_steps()
  target = 'memory flat over 10 min'
  steps['memory_cluster'] = memory_step([('sdk-worker', 0.6), ('taskmanager', -0.3)])
  verdict = report.targets(report.figures(steps))[target]
  assert verdict == {'value': {'sdk-worker:0': 0.6, 'taskmanager:1': -0.3}, 'state': 'met'}
  steps['memory_cluster'] = memory_step([('sdk-worker', 0.6), ('jobmanager', 2.4)])
  assert report.targets(report.figures(steps))[target]['state'] == 'missed'
  steps['memory_cluster'] = memory_step([('sdk-worker', 0.1)], bounded=False)
  assert report.targets(report.figures(steps))[target]['state'] == 'missed'  # a growing backlog
  steps['memory_cluster'] = memory_step([])  # no RSS points after the warmup
  assert report.targets(report.figures(steps))[target]['state'] == 'unknown'


def test_rss_cell_groups_processes_by_kind():
  assert report.rss_cell(trial(500.0)) == 'taskmanager×2 2,100, jobmanager 800'
  assert report.rss_cell(trial(500.0, error='boom')) == 'n/a'


# --- the table in docs/performance.md ---

PAGE = """# Title

## Method

text | with a pipe\r\n and a CRLF line

## Results

Columns explained.

{start}
old table
{end}

## Tests
trailing text without a newline""".format(start=report.MARKER_START, end=report.MARKER_END)


def test_table_is_replaced_between_the_markers_only_and_idempotently():
  new = report.replace_table(PAGE, '| a | b |\n|---|---|\n| 1 | 2 |\n')
  before, after = PAGE.split(report.MARKER_START)[0], PAGE.split(report.MARKER_END)[1]
  assert new.startswith(before + report.MARKER_START + '\n| a | b |')
  assert new.endswith('| 1 | 2 |\n' + report.MARKER_END + after)
  assert 'old table' not in new
  assert report.replace_table(new, '| a | b |\n|---|---|\n| 1 | 2 |\n') == new


@pytest.mark.parametrize('text', [
    'no markers at all',
    report.MARKER_END + '\n' + report.MARKER_START,  # out of order
    report.MARKER_START + report.MARKER_START + report.MARKER_END,  # twice
])
def test_a_page_without_proper_markers_is_refused(text):
  with pytest.raises(ValueError, match='marker'):
    report.replace_table(text, 'table')


def test_the_performance_page_has_the_markers_once_in_its_results_section():
  assert run.TABLE_DOC.endswith('/docs/performance.md')
  with open(run.TABLE_DOC, encoding='utf-8') as handle:
    text = handle.read()
  section = text.split('\n## Results\n', 1)[1].split('\n## ', 1)[0]
  assert section.count(report.MARKER_START) == 1 and section.count(report.MARKER_END) == 1
  assert text.index('\n## Method\n') < text.index('\n## Results\n')


def test_the_readme_carries_no_bench_table():
  # make bench writes docs/performance.md only: hand-written prose keeps no generated table.
  with open(f'{run.ROOT}/README.md', encoding='utf-8') as handle:
    text = handle.read()
  assert report.MARKER_START not in text and report.MARKER_END not in text


def test_table_rows():
  doc = run.finish({'plan': 'quick', 'started_at': '2026-11-24T13:00:00+00:00',
                    'seconds': 2700, 'machine': {'cores': 2, 'cpu_model': 'Xeon',
                                                 'memory_mb': 7951, 'loadavg_before': [3.0, 2, 1],
                                                 'loadavg_after': [5.0, 4, 3]}},
                   list(headline_steps().values()))
  lines = report.table(doc).splitlines()
  assert lines[0].startswith('Run 2026-11-24T13:00:00+00:00, plan `quick` (45 min), 2 cores '
                             '(Xeon), 7,951 MB, load average 3.0/2.0/1.0 before')
  assert lines[0].endswith('Last line: `bench: max_rps=500 p99_ms=n/a vs_java=0.025 '
                           'vs_beam_zscore=0.5`')
  rows = [line for line in lines if line.startswith('| ')][1:]
  assert rows[0] == ('| max sustained | ours | cluster | 1,000 | 1 | 500 | 19,000 / 25,000 | '
                     '1.40 | taskmanager×2 2,100, jobmanager 800 |  |')
  assert '| original Java job | cluster | 1,000 | 1 | ≥ 20,000 |' in rows[1]
  doc['steps'][2]['trials'][0]['other_jobs_on_cluster'] = 2  # ZScore's trial at 1,000/s
  assert report.row_of(doc['steps'][2])[-1] == '2 other job(s) ran on the cluster'
  assert rows[3].startswith(
      '| latency | ours | cluster | 1,000 | 1 | 5,000 (NOT sustained) | n/a |')
  assert rows[3].endswith('| latency: no alert of a measured reading arrived within the 50 s '
                          'horizon (not sustained, 36 s behind at the end) |')


# --- running the plan ---

class FakeClock:
  def __init__(self):
    self.now = 0.0

  def __call__(self):
    return self.now


def test_run_plan_records_a_failed_step_and_goes_on_and_skips_what_is_over_budget():
  clock = FakeClock()
  budget = run.Budget(1000.0, clock)
  steps = [plan.Step('a', 'max', 'anomaly', 'cluster', max_trials=1, warmup=60, measure=60,
                     drain=0),  # 160 s a trial
           plan.Step('b', 'max', 'java', 'cluster', max_trials=1, warmup=60, measure=60,
                     drain=0),
           plan.Step('c', 'max', 'anomaly', 'embedded', max_trials=1, warmup=60, measure=60,
                     drain=0)]

  def execute(step, results, _budget):
    clock.now += 500
    if step.key == 'b':
      raise RuntimeError('REST down')
    return {'max_rps': 100.0, 'trials': [trial(100.0)]}

  out = list(run.run_plan(steps, execute, budget, log=lambda line: None))
  assert [(r['key'], r['status']) for r in out] == [('a', 'done'), ('b', 'failed'),
                                                    ('c', 'skipped')]
  assert out[1]['reason'] == 'RuntimeError: REST down'
  # at 1,000 s a 160 s trial would end at 1,160 s > 1,000 s x 1.1
  assert out[2]['reason'] == 'out of budget: 17 of 17 min used'
  assert out[0]['max_rps'] == 100.0 and out[0]['seconds'] == 500


def test_a_step_whose_trials_all_failed_is_failed_with_the_first_error():
  status = run.step_status({'trials': [trial(1.0, error='timed out after 500 s'),
                                       trial(2.0, error='exit 1')]})
  assert status == {'status': 'failed', 'reason': 'timed out after 500 s'}
  assert run.step_status({'trials': [], 'stopped': 'out of budget'})['status'] == 'skipped'


def test_search_stops_when_the_budget_says_so_and_grows_by_its_factor():
  rates = []

  def fake_trial(rate, trial_args, job_args, timeout_s):
    rates.append(rate)
    return trial(rate)

  starts = iter([True, True, False])
  result = measure.search([], [], 5000.0, None, 0.5, 5, 100.0, log=lambda line: None,
                          factor=4.0, may_start=lambda: next(starts), run_trial=fake_trial)
  assert rates == [5000.0, 20_000.0]
  assert result['max_rps'] == 20_000.0
  assert result['stopped'] == 'out of budget before the trial at 80000/s'


def test_services_for_the_plan():
  quick = plan.quick_plan()
  assert run.services_for(quick, 9192, 8197) == [
      ('kafka.sh', {'KAFKA_PORT': '9192'}), ('expansion_service.sh', {'EXPANSION_PORT': '8197'}),
      ('flink_cluster.sh', None)]
  java_only = [quick[1]]
  assert run.services_for(java_only, 9192, 8197) == [('kafka.sh', {'KAFKA_PORT': '9192'}),
                                                     ('flink_cluster.sh', None)]
  embedded = [s for s in quick if s.mode == 'embedded']
  assert ('flink_cluster.sh', None) not in run.services_for(embedded, 9192, 8197)


class FakeServices:
  instances = []

  def __init__(self):
    self.started, self.stopped = [], False
    FakeServices.instances.append(self)

  def ensure(self, script, env=None):
    self.started.append(script)

  def stop_started(self):
    self.stopped = True


@pytest.fixture
def fake_run(monkeypatch, tmp_path):
  """bench.run.main with faked services, machine details and trials; the table's page in
  tmp_path (and the repository's docs/performance.md checked to be left alone)."""
  real_path = run.TABLE_DOC
  with open(real_path, 'rb') as handle:
    real_page = handle.read()
  FakeServices.instances.clear()
  monkeypatch.setattr(run, 'Services', FakeServices)
  monkeypatch.setattr(run.machine, 'details', lambda: {
      'cores': 2, 'cpu_model': 'Xeon', 'memory_mb': 7951, 'loadavg_before': [1.0, 1.0, 1.0],
      'versions': {'beam': '2.70.0', 'java': 'openjdk version "17"'}})
  monkeypatch.setattr(run, 'cluster_version', lambda: '1.19.3')
  page = tmp_path / 'performance.md'
  page.write_bytes(PAGE.encode())
  monkeypatch.setattr(run, 'TABLE_DOC', str(page))
  canned = headline_steps()

  def executor(addresses, log):
    def execute(step, results, budget):
      if step.key in canned:
        return {k: canned[step.key][k] for k in ('max_rps', 'trials')}
      return {'max_rps': None, 'trials': [trial(400.0, cpu=2.5)]}
    return execute
  monkeypatch.setattr(run, 'executor', executor)
  yield tmp_path, page
  with open(real_path, 'rb') as handle:
    assert handle.read() == real_page, 'a test wrote to the repository docs/performance.md'


def test_main_writes_the_results_file_and_the_table_and_prints_the_last_line_last(
    fake_run, capsys):
  tmp_path, page = fake_run
  out_dir = tmp_path / 'bench'
  assert run.main(['--out_dir', str(out_dir)]) == 0
  printed = capsys.readouterr().out.rstrip('\n').splitlines()
  assert printed[-1] == 'bench: max_rps=500 p99_ms=n/a vs_java=0.025 vs_beam_zscore=0.5'
  assert any(line.startswith('  target max_rps >= 20,000 readings/s: missed') for line in printed)

  stamped = [p for p in out_dir.iterdir() if p.name.startswith('bench-')]
  assert len(stamped) == 1 and stamped[0].name.endswith('Z.json')
  latest = (out_dir / 'latest.json').read_text(encoding='utf-8')
  assert stamped[0].read_text(encoding='utf-8') == latest
  doc = json.loads(latest)
  assert doc['machine']['cores'] == 2 and doc['machine']['versions']['flink_cluster'] == '1.19.3'
  assert len(doc['machine']['loadavg_after']) == 3
  assert doc['services_started'] == ['kafka.sh', 'expansion_service.sh', 'flink_cluster.sh']
  # the cluster's JVMs got one unreported trial first
  assert doc['cluster_warmup'] == {'offered_rps': 400.0, 'consumed_rps': 400.0, 'error': None}
  assert 'warmup_cluster' not in [s['key'] for s in doc['steps']]
  assert FakeServices.instances[0].stopped
  assert [s['key'] for s in doc['steps']] == [s.key for s in plan.quick_plan()]
  assert doc['figures']['vs_beam_zscore']['value'] == 0.5
  assert doc['figures']['java_max_rps']['lower_bound'] is True
  assert doc['last_line'] == printed[-1]
  assert doc['steps'][-1]['trials'][0]['cpu']['cpu_ms_per_reading'] == 2.5

  text = page.read_bytes().decode()  # as bytes: the CRLF line must stay a CRLF line
  assert '| cost | ours | embedded | 100,000 | 2 | 400 (sustained) |' in text
  assert text.split(report.MARKER_START)[0] == PAGE.split(report.MARKER_START)[0]
  assert text.split(report.MARKER_END)[1] == PAGE.split(report.MARKER_END)[1]
  assert 'the table in docs/performance.md updated' in printed[-2]


def test_main_with_a_small_budget_reports_the_left_out_steps_as_skipped(fake_run):
  tmp_path, _ = fake_run
  assert run.main(['--out_dir', str(tmp_path / 'b'), '--budget_min', '40', '--no_table']) == 0
  doc = json.loads((tmp_path / 'b' / 'latest.json').read_text(encoding='utf-8'))
  skipped = [s for s in doc['steps'] if s['status'] == 'skipped']
  assert [s['key'] for s in skipped][0] == 'memory_cluster' and len(skipped) == 8
  assert all(s['max_rps'] is None and 'budget' in s['reason'] for s in skipped)


def test_main_when_a_service_does_not_start_reports_every_step_failed_and_exits_1(
    fake_run, monkeypatch, capsys):
  tmp_path, page = fake_run

  class BrokenServices(FakeServices):
    def ensure(self, script, env=None):
      raise RuntimeError(f'runners/{script} start failed')
  monkeypatch.setattr(run, 'Services', BrokenServices)
  assert run.main(['--out_dir', str(tmp_path / 'c'), '--no_readme']) == 1  # the old name
  assert capsys.readouterr().out.rstrip('\n').splitlines()[-1] == (
      'bench: max_rps=n/a p99_ms=n/a vs_java=n/a vs_beam_zscore=n/a')
  doc = json.loads((tmp_path / 'c' / 'latest.json').read_text(encoding='utf-8'))
  assert {s['status'] for s in doc['steps']} == {'failed'}
  assert doc['figures']['max_rps']['reason'] == 'RuntimeError: runners/kafka.sh start failed'
  assert page.read_bytes() == PAGE.encode()  # --no_readme


# --- the machine ---

def test_machine_details_are_parsed_from_proc_and_the_installed_files(tmp_path):
  cpuinfo = 'processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n'
  assert machine.cpu_model(cpuinfo) == 'AMD EPYC 7B13'
  assert machine.cpu_model('processor\t: 0\n') is None
  assert machine.mem_total_mb('MemTotal:       24684544 kB\nMemFree: 1 kB\n') == 24106
  (tmp_path / '.cache' / 'flink').mkdir(parents=True)
  (tmp_path / '.cache' / 'flink' / '.installed-1.19.3').touch()
  (tmp_path / '.cache' / 'jars' / 'kafka').mkdir(parents=True)
  (tmp_path / '.cache' / 'jars' / 'kafka' / 'kafka_2.13-4.1.1.jar').touch()
  (tmp_path / '.cache' / 'jars' / 'kafka' / 'kafka-clients-4.1.1.jar').touch()
  versions = machine.versions(str(tmp_path), java=lambda: 'openjdk version "17.0.13"')
  assert (versions['flink'], versions['kafka_broker'], versions['java']) == (
      '1.19.3', '4.1.1', 'openjdk version "17.0.13"')
  assert versions['kafka_clients_in_kafkaio'] is None  # no expansion service jars here
  assert versions['beam'] and versions['python'].startswith('3.')


def test_make_bench_is_its_own_target_outside_make_test():
  with open(f'{run.ROOT}/Makefile', encoding='utf-8') as handle:
    lines = handle.read().splitlines()
  test_line = next(line for line in lines if line.startswith('test:'))
  assert 'bench' not in test_line
  at = lines.index('bench: $(VENV)/.e2e-installed jars')
  assert lines[at + 1:at + 3] == ['\trunners/fetch_flink.sh',
                                  '\t$(PY) -m bench.run $(BENCH_ARGS)']


def test_redo_measures_only_the_named_steps_and_keeps_the_others(fake_run, monkeypatch):
  tmp_path, page = fake_run
  first = tmp_path / 'first'
  assert run.main(['--out_dir', str(first)]) == 0
  previous = json.loads((first / 'latest.json').read_text(encoding='utf-8'))
  measured = []

  def executor(addresses, log):
    def execute(step, results, budget):
      measured.append(step.key)
      return {'max_rps': 2000.0, 'trials': [trial(2000.0)]}
    return execute
  monkeypatch.setattr(run, 'executor', executor)
  again = tmp_path / 'again'
  assert run.main(['--out_dir', str(again), '--redo', 'ours_cluster',
                   '--previous', str(first / 'latest.json')]) == 0
  assert measured == ['warmup_cluster', 'ours_cluster']  # a cluster step: warm-up first
  doc = json.loads((again / 'latest.json').read_text(encoding='utf-8'))
  assert [s['key'] for s in doc['steps']] == [s['key'] for s in previous['steps']]
  by_key = {s['key']: s for s in doc['steps']}
  assert by_key['ours_cluster']['max_rps'] == 2000.0
  assert by_key['java_cluster']['trials'] == {s['key']: s for s in previous['steps']}[
      'java_cluster']['trials']
  assert doc['last_line'].startswith('bench: max_rps=2000 ')
  assert doc['redo'] == {'steps': ['ours_cluster'], 'others_from': previous['started_at']}
  assert 'Steps ours_cluster re-measured in this run' in page.read_text(encoding='utf-8')


def test_redo_refuses_an_unknown_step_naming_the_option(capsys):
  with pytest.raises(SystemExit):
    run.parse_args(['--redo', 'ours_nowhere'])
  assert '--redo: no such step in the quick plan: ours_nowhere' in capsys.readouterr().err
