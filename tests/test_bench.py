"""Unit tests of the benchmark's pure parts: no Kafka, no Flink, no clock."""

import json
import os
from types import SimpleNamespace

import pytest

from bench import analysis, flink_rest, job, load, rss, trial
from bench.analysis import Sample
from bench.flink_rest import counter_name
from bench.trial import alert_latencies, cpu_report, latency_parts, spike_every
from runners import flink_rest as runners_flink_rest
from runners.flink_options import CLUSTER_CHECKPOINT_MS, PYTHON_STAGES_BOUND, flink_args
from transforms.parse import RecordParser
from transforms.records import RawRecord, Reading


# --- percentiles ---

def test_percentile_is_nearest_rank():
  values = [5, 1, 4, 2, 3, 10, 9, 8, 7, 6]  # sorted: 1..10
  assert analysis.percentile(values, 50) == 5  # rank ceil(0.5 * 10) = 5
  assert analysis.percentile(values, 99) == 10  # rank ceil(9.9) = 10
  assert analysis.percentile(values, 0) == 1  # rank clamped to 1
  assert analysis.percentile(values, 100) == 10


def test_percentile_p99_of_a_hundred_is_the_99th_value():
  assert analysis.percentile(list(range(1, 101)), 99) == 99


def test_percentile_of_nothing_is_none_and_bad_p_raises():
  assert analysis.percentile([], 50) is None
  with pytest.raises(ValueError, match='p must be'):
    analysis.percentile([1], 101)


def test_latency_summary():
  assert analysis.latency_summary([300, 100, 200]) == {
      'alerts': 3, 'p50_ms': 200, 'p99_ms': 300, 'max_ms': 300}
  assert analysis.latency_summary([])['p99_ms'] is None


# --- the lag-bounded decision ---

def steady(rate, consumed_rate, lag0=0, seconds=60, step=10):
  """Samples every `step` s: produced at `rate`, consumed at `consumed_rate`."""
  return [Sample(t, rate * t + lag0, consumed_rate * t) for t in range(0, seconds + 1, step)]


def test_slope_of_a_line():
  assert analysis.slope([(0, 1), (1, 3), (2, 5)]) == pytest.approx(2.0)
  assert analysis.slope([(1, 5)]) == 0.0


def test_keeping_up_with_a_constant_lag_is_bounded():
  verdict = analysis.lag_verdict(steady(1000, 1000, lag0=2000))
  assert verdict.bounded, verdict.reason
  assert verdict.produced_rps == 1000 and verdict.consumed_rps == 1000
  assert verdict.lag_slope_rps == 0


def test_falling_behind_by_ten_percent_is_unbounded():
  # lag grows 1000 - 900 = 100 records/s = 10 % of the produced rate > 5 %
  verdict = analysis.lag_verdict(steady(1000, 900))
  assert not verdict.bounded
  assert verdict.lag_slope_rps == pytest.approx(100)
  assert 'lag grows' in verdict.reason


def test_a_small_growth_within_tolerance_is_bounded():
  # 1000 - 980 = 20 records/s = 2 % < 5 %; lag after 60 s: 1,200 < 30 s x 1000
  assert analysis.lag_verdict(steady(1000, 980)).bounded


def test_keeping_pace_far_behind_is_unbounded():
  # no growth, but a lag of 40 s of production (40,000 > 30 s x 1000)
  verdict = analysis.lag_verdict(steady(1000, 1000, lag0=40_000))
  assert not verdict.bounded
  assert 'over 30 s' in verdict.reason


def test_one_late_counter_update_does_not_decide():
  samples = steady(1000, 1000, lag0=500)
  # the last counter report is 3 s old: the last lag jumps by 3,000 once
  samples[-1] = Sample(samples[-1].t, samples[-1].produced, samples[-1].consumed - 3000)
  # least-squares slope over 7 points: 3000 * (60 - 30) / sum((t - 30)^2) = 90000 / 2800 = 32
  verdict = analysis.lag_verdict(samples)
  assert verdict.bounded, verdict.reason
  assert verdict.lag_slope_rps == pytest.approx(32.1, abs=0.1)


def test_too_few_samples_raise():
  with pytest.raises(ValueError, match='at least 3'):
    analysis.lag_verdict(steady(1000, 1000)[:2])


# --- the rate search ---

def search(capacity, start=1000, **kw):
  """Runs next_rate against a job that keeps up with rates <= capacity."""
  trials = {}
  while (rate := analysis.next_rate(trials, start, **kw)) is not None:
    assert rate not in trials, f'{rate} tried twice: {trials}'
    trials[rate] = rate <= capacity
  return trials


def test_search_doubles_then_bisects_to_the_resolution():
  trials = search(capacity=3000)
  # 1000 ok, 2000 ok, 4000 too much; sqrt(2000 * 4000) = 2830 ok;
  # sqrt(2830 * 4000) = 3360 too much; sqrt(2830 * 3360) = 3080 too much; 3080 / 2830 < 1.1
  assert list(trials) == [1000, 2000, 4000, 2830, 3360, 3080]
  assert analysis.max_bounded(trials) == 2830


def test_search_goes_down_when_the_start_is_too_much():
  trials = search(capacity=300)
  # 1000, 500 too much; 250 ok; then between 250 and 500: 350 too much, 300 ok, 320 too much
  assert list(trials)[:3] == [1000, 500, 250]
  assert analysis.max_bounded(trials) == 300


def test_search_trusts_a_failure_below_a_success():
  # a noisy run: 2000 failed although 4000 passed; the answer must stay below 2000
  trials = {1000: True, 4000: True, 2000: False}
  assert analysis.next_rate(trials, 1000) == 1410  # sqrt(1000 * 2000) = 1414 -> 1410
  assert analysis.max_bounded(trials) == 1000


def test_search_stops_at_the_ceiling():
  assert analysis.next_rate({1000: True, 2000: True}, 1000, ceiling=3000) is None


# --- /proc parsing ---

STATUS = """Name:\tjava
Umask:\t0022
State:\tS (sleeping)
VmPeak:\t 5304812 kB
VmHWM:\t  812344 kB
VmRSS:\t  790012 kB
Threads:\t74
"""


def test_parse_status_reads_peak_and_current_rss():
  assert rss.parse_status(STATUS) == {'VmHWM': 812344, 'VmRSS': 790012}


def test_parse_status_of_a_process_without_memory():
  assert rss.parse_status('Name:\tkthreadd\nState:\tS (sleeping)\n') == {}


def test_parse_status_rejects_another_unit():
  with pytest.raises(ValueError, match='unexpected unit'):
    rss.parse_status('VmRSS:\t 12 MB\n')


def test_parent_of_a_command_with_spaces_and_parentheses():
  assert rss.parent_of('4242 (python (worker) 1) S 17 4242 4242 0 -1') == 17


def test_peak_rss_keeps_the_largest_of_hwm_and_samples(monkeypatch):
  monkeypatch.setattr(rss, 'label', lambda pid: 'java')
  for use_hwm, expected_kb in ((True, 200), (False, 150)):
    statuses = iter([{'VmHWM': 100, 'VmRSS': 90}, {'VmHWM': 100, 'VmRSS': 150},
                     {'VmHWM': 200, 'VmRSS': 80}])
    monkeypatch.setattr(rss, 'read_status', lambda pid, s=statuses: next(s))
    peaks = rss.PeakRss(lambda: [7], use_hwm=use_hwm)
    for _ in range(3):
      peaks.sample()
    # with the kernel's peak the last VmHWM (200 kB) wins; without it the sampled 150 kB
    assert peaks.peaks[7]['peak_kb'] == expected_kb


def test_cpu_seconds_from_stat():
  # fields after the command: state ppid pgrp session tty tpgid flags minflt cminflt majflt
  # cmajflt utime=250 stime=50 -> (250 + 50) / 100 ticks/s = 3.0 s
  stat = '99 (java) S 1 99 99 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 40'
  assert rss.cpu_seconds(stat, 100) == 3.0


def test_cpu_report_per_reading(monkeypatch):
  monkeypatch.setattr(rss, 'label', lambda pid: {1: 'job-server', 2: 'python'}[pid])
  # 60 s window: JVM used 30 CPU-s, Python 54 CPU-s; 84 CPU-s / (1000/s x 60 s) = 1.4 ms
  report = cpu_report({1: 10.0, 2: 6.0}, {1: 40.0, 2: 60.0}, 1000.0, 60.0)
  assert report == {'cores': 1.4, 'per_process_cores': {'job-server:1': 0.5, 'python:2': 0.9},
                    'cpu_ms_per_reading': 1.4}


# --- Flink metric names ---

def test_counter_name():
  assert counter_name('0.[4]{ReadSensorRecords__ParseReadings}.anomaly_readings') == 'readings'
  assert counter_name('0.Source__Read.numRecordsOut') is None


# --- the load generator's records and schedule ---

def test_java_partition_matches_the_java_client():
  # Kafka's UtilsTest: murmur2("21") = -973932308; & 0x7fffffff = 1173551340
  assert load.java_partition(b'21', 4) == 1173551340 % 4 == 0
  assert load.java_partition(b'21', 7) == 1173551340 % 7 == 3


def test_payload_is_a_reading_the_job_parses():
  sensor = load.make_sensors([7], partitions=4)[0]
  raw = load.payload(sensor, 3, 1795513373524, spike_every=0)
  reading = RecordParser().parse(RawRecord(raw, timestamp_ms=1795513373524))
  assert isinstance(reading, Reading)
  assert (reading.sensor_id, reading.ts_ms) == ('sensor-0007', 1795513373524)
  assert sensor.key == b'sensor-0007'


def test_csv_payload_is_the_original_jobs_format():
  sensor = load.make_sensors([7], partitions=4, fmt='csv')[0]
  raw = load.payload(sensor, 0, 1795513373524, spike_every=0)
  reading = RecordParser().parse(RawRecord(raw, timestamp_ms=1795513373524))
  assert raw.startswith(b'sensor-0007,') and raw.count(b',') == 1
  assert (reading.sensor_id, reading.ts_ms) == ('sensor-0007', 1795513373524)


def test_every_nth_reading_of_a_sensor_is_a_spike():
  sensor = load.make_sensors([0], partitions=1)[0]
  values = [json.loads(load.payload(sensor, n, 0, spike_every=4))['value'] for n in range(8)]
  normal = [v for i, v in enumerate(values) if i % 4 != 3]
  # readings 3 and 7 are level + 120; normal ones are level + noise (noise < 3 x 5)
  assert values[3] == values[7] > max(normal) + 100


def test_spikes_are_staggered_over_the_sensors():
  # every 4th reading of a sensor, sensor s first at n = 3 - s (mod 4): in any round of
  # readings (one per sensor) of 8 sensors, 2 are spikes, not 8 in one round and 0 after
  rounds = [[load.is_spike(s, n, 4) for s in range(8)] for n in range(4)]
  assert [sum(r) for r in rounds] == [2, 2, 2, 2]
  assert [n for n in range(8) if load.is_spike(1, n, 4)] == [2, 6]
  assert not any(load.is_spike(s, n, 0) for s in range(3) for n in range(5))


def test_spike_every_gives_one_spike_per_sensor_per_interval():
  # 5,000 readings/s over 1,000 sensors = 5 per sensor per s; 150 s -> every 750th
  assert spike_every(5000, 1000, 150) == 750
  assert spike_every(10, 1000, 150) == 2  # never every reading


def test_due_keeps_the_schedule_and_catches_up():
  assert load.due(5000, 0.010, 0) == 50
  assert load.due(5000, 0.010, 50) == 0
  assert load.due(5000, 0.030, 50) == 100  # a late tick sends what it missed
  assert load.due(5000, 0.010, 80) == 0  # never negative


def test_combine_adds_counts_and_takes_the_longest_time():
  parts = [{'mode': 'rate', 'sent': 100, 'seconds': 10.0, 'first_ts_ms': 5, 'last_ts_ms': 9,
            'offered_rps': 10.0},
           {'mode': 'rate', 'sent': 100, 'seconds': 12.5, 'first_ts_ms': 4, 'last_ts_ms': 8,
            'offered_rps': 10.0}]
  combined = load.combine(parts)
  assert combined['sent'] == 200 and combined['achieved_rps'] == 16.0  # 200 / 12.5
  assert (combined['first_ts_ms'], combined['last_ts_ms'], combined['offered_rps']) == (4, 9, 20.0)


# --- alert latency ---

def test_alert_latency_is_alert_timestamp_minus_reading_ts_within_the_window():
  def alert(reading_ts, alert_ts):
    return SimpleNamespace(value=json.dumps({'ts': reading_ts}).encode(), timestamp=alert_ts)
  records = [alert('2026-11-24T05:00:00.000Z', 1795496400000 + 7250),  # 7.25 s
             alert('2026-11-24T05:00:59.999Z', 1795496459999 + 3000),  # 3 s
             alert('2026-11-24T05:01:00.000Z', 1795496460000 + 1000)]  # outside [from, to)
  # 2026-11-24T05:00:00Z = 1795496400000 ms
  assert alert_latencies(records, 1795496400000, 1795496460000) == [7250, 3000]


def test_latency_parts_split_at_detected_at():
  def alert(reading_ts, detected_at, alert_ts, **more):
    value = dict(ts=reading_ts, **({'detected_at': detected_at} if detected_at else {}))
    return SimpleNamespace(value=json.dumps(value).encode(), timestamp=alert_ts)
  records = [alert('2026-11-24T05:00:00.000Z', '2026-11-24T05:00:01.500Z', 1795496402000),
             alert('2026-11-24T05:00:10.000Z', None, 1795496411000),  # not ours: no detected_at
             alert('2026-11-24T05:01:00.000Z', '2026-11-24T05:01:01.000Z', 1795496462000)]
  assert latency_parts(records, 1795496400000, 1795496460000) == {
      'detect': [1500], 'publish': [500]}


# --- a rate that was never offered was not sustained ---

def test_a_load_that_fell_short_of_the_offered_rate_is_not_sustained():
  # produced 1000/s and read just as fast, but 2,000/s were offered: 1000 < 0.9 x 2000
  verdict = analysis.lag_verdict(steady(1000, 1000), offered_rps=2000)
  assert not verdict.bounded
  assert verdict.reason == ('only 1000 of 2000 readings/s offered were produced '
                            '(load generator or broker limit)')
  assert analysis.lag_verdict(steady(1000, 1000), offered_rps=1100).bounded  # 1000 >= 990


# --- the original job's alerts, matched to their readings ---

def test_matched_latencies_count_each_reading_once_with_its_first_alert():
  sent = {('sensor-0001', 170.5): [1_000, 151_000], ('sensor-0002', 99.25): [5_000]}
  alerts = [('sensor-0001', 170.5, 13_000),  # the second window holding the first spike
            ('sensor-0001', 170.5, 3_000),  # the first: 3,000 - 1,000 = 2,000
            ('sensor-0001', 170.5, 152_500),  # the second spike: 1,500
            ('sensor-0002', 99.25, 4_000),  # before its reading was sent: not this one
            ('sensor-0003', 50.0, 9_000)]  # no such reading in the measured stretch
  assert analysis.matched_latencies(alerts, sent) == [1_500, 2_000]


def test_csv_alerts_are_read_from_the_original_jobs_json():
  record = SimpleNamespace(value=b'{"sensor_id": "sensor-0001", "value": 170.5, '
                                 b'"window_avg": 51.2, "window_start_ms": 0, '
                                 b'"window_end_ms": 60000}', timestamp=3_000)
  assert trial.csv_alerts([record]) == [('sensor-0001', 170.5, 3_000)]


class FakeConsumer:
  """KafkaConsumer over fixed records: assign, seek, iterate from the sought offsets."""

  def __init__(self, records, **config):
    self.records, self.config, self.start = records, config, {}

  def assign(self, partitions):
    self.assigned = {tp.partition for tp in partitions}

  def seek(self, tp, offset):
    self.start[tp.partition] = offset

  def __iter__(self):
    return iter([r for r in self.records if r.partition in self.assigned
                 and r.offset >= self.start[r.partition]])

  def close(self):
    pass


def test_csv_sent_times_keeps_the_wanted_readings_between_the_offsets(monkeypatch):
  def rec(partition, offset, value, timestamp):
    return SimpleNamespace(partition=partition, offset=offset, value=value, timestamp=timestamp)
  records = [rec(0, 4, b'sensor-0001,170.5', 100),  # before the start offset
             rec(0, 5, b'sensor-0001,170.5', 200),
             rec(0, 6, b'sensor-0001,51.0', 210),  # not an alerted value
             rec(0, 7, b'sensor-0009,170.5', 220),  # not an alerted sensor
             rec(1, 0, b'sensor-0002,99.25', 300),
             rec(1, 1, b'sensor-0002,99.25', 400),  # at the end offset: after the window
             rec(2, 0, b'sensor-0001,170.5', 500)]  # partition 2 is empty in the window
  monkeypatch.setattr(trial, 'KafkaConsumer', lambda **config: FakeConsumer(records, **config))
  sent = trial.csv_sent_times('b:9192', 't', start={0: 5, 1: 0, 2: 0}, end={0: 8, 1: 1, 2: 0},
                              wanted={('sensor-0001', 170.5), ('sensor-0002', 99.25)})
  assert sent == {('sensor-0001', 170.5): [200], ('sensor-0002', 99.25): [300]}


# --- the Java job's progress, the cluster's processes, memory over time ---

def test_source_records_out_sums_the_source_vertices():
  detail = {'vertices': [
      {'name': 'Source: ReadCsvLines -> ParseLine', 'metrics': {'write-records': 1200}},
      {'name': 'WindowDeviations -> WriteAlerts', 'metrics': {'write-records': 7}},
      {'name': 'Source: Other', 'metrics': {}}]}
  assert flink_rest.source_records_out(detail) == 1200


def test_job_id_is_the_named_job_never_the_only_other_one(monkeypatch):
  jobs = [{'jid': 'old', 'name': 'bench-anomaly-cluster-p1-aaaa', 'state': 'CANCELED',
           'start-time': 1}]
  monkeypatch.setattr(flink_rest, 'get', lambda base, path: {'jobs': jobs})
  assert flink_rest.job_id('rest', 'bench-anomaly-cluster-p1-bbbb') is None
  jobs.append({'jid': 'new', 'name': 'bench-anomaly-cluster-p1-bbbb', 'state': 'RUNNING',
               'start-time': 2})
  assert flink_rest.job_id('rest', 'bench-anomaly-cluster-p1-bbbb') == 'new'


def test_wait_ended_polls_until_the_job_has_ended(monkeypatch):
  states = iter(['RUNNING', 'CANCELLING', 'CANCELED'])
  monkeypatch.setattr(runners_flink_rest, 'call', lambda path, rest: {'state': next(states)})
  monkeypatch.setattr(runners_flink_rest.time, 'sleep', lambda s: None)
  assert runners_flink_rest.wait_ended('j1', rest='rest') == 'CANCELED'


def test_wait_ended_gives_up_naming_the_state(monkeypatch):
  monkeypatch.setattr(runners_flink_rest, 'call', lambda path, rest: {'state': 'CANCELLING'})
  monkeypatch.setattr(runners_flink_rest.time, 'sleep', lambda s: None)
  with pytest.raises(RuntimeError, match='j1 still CANCELLING'):
    runners_flink_rest.wait_ended('j1', rest='rest', timeout_s=0.0)


class _Offsets:
  def __init__(self, produced):
    self.values = iter(produced)

  def produced(self):
    return next(self.values)


class _Reader:
  def __init__(self, consumed):
    self.values = iter(consumed)

  def read(self):
    return {'readings': next(self.values)}


def _sampler(produced, consumed):
  running = SimpleNamespace(state=lambda: 'RUNNING')
  return trial.Sampler(0.0, _Offsets(produced), _Reader(consumed), running, 'readings',
                       poll_s=0.0)


def test_sampler_keeps_counts_that_change(monkeypatch):
  clock = iter([1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 9.0])
  monkeypatch.setattr(trial.time, 'time', lambda: next(clock))
  sampler = _sampler([10, 20, 30], [0, 15, 15])
  sampler.run_until(5.0)
  assert sampler.samples == [Sample(1.0, 10, 0), Sample(2.0, 20, 15)]


def test_sampler_refuses_counters_above_what_was_produced(monkeypatch):
  # Seen once: a new job's REST metrics showing the previous job's final count.
  clock = iter([1.0, 1.0])
  monkeypatch.setattr(trial.time, 'time', lambda: next(clock))
  with pytest.raises(RuntimeError, match='not this job'):
    _sampler([0], [139998]).run_until(5.0)


def test_a_trial_on_the_cluster_waits_for_its_job_to_end(monkeypatch):
  calls = []
  monkeypatch.setattr(runners_flink_rest, 'wait_ended',
                      lambda jid, rest: calls.append((rest, jid)))
  monkeypatch.setattr(job.kafka_topics, 'delete', lambda admin, names: calls.append('deleted'))
  fresh = job.OriginalBenchJob('127.0.0.1:1')
  fresh._admin = SimpleNamespace(close=lambda: None)
  fresh.state = lambda: 'CANCELED'
  fresh.jid = 'j1'
  fresh.locate()
  fresh.__exit__(None, None, None)
  assert calls == [('localhost:8081', 'j1'), 'deleted']


def test_cluster_pids_include_every_taskmanager(tmp_path):
  me, parent = os.getpid(), os.getppid()
  (tmp_path / 'flink-jobmanager.pid').write_text(f'{parent}\n')
  (tmp_path / 'flink-taskmanager-2.pid').write_text(f'{me}\n')
  (tmp_path / 'kafka.pid').write_text('1\n')  # not the cluster's
  pids = rss.cluster_pids(str(tmp_path))
  assert pids[0] == parent and me in pids and 1 not in pids
  assert rss.cluster_pids(str(tmp_path / 'missing')) == []


def test_rss_trend_is_the_slope_after_the_warmup(monkeypatch):
  monkeypatch.setattr(rss, 'label', lambda pid: 'taskmanager')
  clock = iter([0.0, 60.0, 120.0, 180.0, 240.0])
  rss_kb = iter([500 * 1024, 100 * 1024, 102 * 1024, 104 * 1024, 106 * 1024])
  monkeypatch.setattr(rss, 'read_status', lambda pid: {'VmRSS': next(rss_kb)})
  peaks = rss.PeakRss(lambda: [7], series_every_s=10.0, clock=lambda: next(clock))
  for _ in range(5):
    peaks.sample()
  # from t = 60 s: 100, 102, 104, 106 MB a minute apart -> +2 MB/min (the 500 MB before it
  # is the warmup)
  assert peaks.trend(since=60.0) == [{'pid': 7, 'label': 'taskmanager', 'mb_per_min': 2.0,
                                      'points': 4}]
  assert peaks.trend(since=200.0) == []  # fewer than 3 points


# --- which job a trial runs ---

def test_the_java_job_runs_on_the_cluster_only_and_without_beam_options():
  with pytest.raises(ValueError, match='cluster only'):
    job.make_job('java', 'embedded', 'b:9192', 'e:8197', 1, 4, [], 'f:8081', 'w:50000')
  with pytest.raises(ValueError, match='takes no job options'):
    job.make_job('java', 'cluster', 'b:9192', 'e:8197', 1, 4, ['--rule=zscore'], 'f:8081',
                 'w:50000')
  with pytest.raises(SystemExit):
    trial.parse_args(['--job', 'java', '--mode', 'embedded', '--rate', '100'])


def test_the_java_job_gets_the_benchmark_windows_and_csv():
  java = job.make_job('java', 'cluster', 'b:9192', 'e:8197', 2, 4, [], 'f:8081', 'w:50000')
  assert set(java.topics) == {'readings', 'alerts'}
  args = dict(zip(java.program_args[::2], java.program_args[1::2]))
  assert (args['--window-ms'], args['--slide-ms'], args['--parallelism']) == ('60000', '10000', '2')
  assert args['--input-topic'] == java.topics['readings'] and args['--group-id'] == java.job_name
  assert job.describe(java) == {'job': 'java', 'job_name': java.job_name, 'checkpoint_ms': None}
  assert (job.load_format('java'), job.load_format('beam_zscore')) == ('csv', 'json')
  assert trial.parse_args(['--rate', '100'])[0].job == 'anomaly'


def test_each_beam_job_is_judged_by_its_own_counter():
  # ZScore's end of chain is its scoring step; ours is read up to the parser (judged
  # readings wait for their slot's baseline by design)
  assert job.COUNTERS['beam_zscore'][0] == 'zscore_readings'
  assert job.COUNTERS['anomaly'][0] == 'readings'
  assert all(consumed in counters for consumed, counters in job.COUNTERS.values())


def test_label_names_flink_processes_whose_classpath_holds_the_job_server_jar(monkeypatch):
  # The cluster's lib carries the job server's jars (runners/cluster_lib.py).
  commands = {
      1: 'java -classpath /l/beam-172-beam-runners-flink-1.19-job-server-2.70.0.jar:/l/flink-dist.jar '
         'org.apache.flink.runtime.taskexecutor.TaskManagerRunner --configDir c',
      2: 'java -classpath /l/beam-172-beam-runners-flink-1.19-job-server-2.70.0.jar '
         'org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint',
      3: 'java -jar /j/beam-runners-flink-1.19-job-server-2.70.0.jar --job-port 0',
  }
  monkeypatch.setattr(rss, 'cmdline', commands.get)
  assert [rss.label(p) for p in (1, 2, 3)] == ['taskmanager', 'jobmanager', 'job-server']


def test_the_load_starts_only_once_the_job_has_read_the_primer(monkeypatch):
  clock = iter(range(100))
  monkeypatch.setattr(trial.time, 'monotonic', lambda: next(clock))
  monkeypatch.setattr(trial.time, 'sleep', lambda s: None)
  running = SimpleNamespace(state=lambda: 'RUNNING', consumed_counter='readings')
  # 2,000 produced; the counter shows 0, then a failed REST read, 1,500, then all of them
  reads = iter([0, OSError('refused'), 1500, 2000, 2000])

  class Reader:
    def read(self):
      value = next(reads)
      if isinstance(value, Exception):
        raise value
      return {'readings': value}

  assert trial.wait_consumed(running, Reader(), _Offsets([2000]), timeout_s=50) == 2000
  assert next(reads) == 2000  # stopped at the first count that covered the primer


def test_a_job_that_never_reads_the_primer_fails_the_trial(monkeypatch):
  clock = iter(range(0, 1000, 10))
  monkeypatch.setattr(trial.time, 'monotonic', lambda: next(clock))
  monkeypatch.setattr(trial.time, 'sleep', lambda s: None)
  running = SimpleNamespace(state=lambda: 'RUNNING', consumed_counter='readings')
  with pytest.raises(RuntimeError, match='did not read the 2000 primer readings'):
    trial.wait_consumed(running, _Reader([0] * 100), _Offsets([2000]), timeout_s=50)
  failed = SimpleNamespace(state=lambda: 'FAILED', consumed_counter='readings')
  with pytest.raises(RuntimeError, match='job ended while priming: FAILED'):
    trial.wait_consumed(failed, _Reader([0]), _Offsets([2000]), timeout_s=50)


def test_a_trial_reports_the_checkpoint_interval_its_job_options_leave():
  cluster = flink_args('cluster', 'j', job_endpoint='localhost:8099')
  assert job.checkpoint_interval_ms(cluster) == CLUSTER_CHECKPOINT_MS
  # a trial's own job options come last and win, as in Beam's option parsing
  assert job.checkpoint_interval_ms(cluster + ['--checkpointing_interval=60000']) == 60_000
  assert job.checkpoint_interval_ms(cluster + ['--checkpointing_interval=-1']) is None
  assert job.checkpoint_interval_ms(flink_args('embedded', 'j', job_endpoint='x:1')) is None


def test_the_beam_jobs_run_with_a_python_worker_per_stage_subtask_on_the_cluster(monkeypatch):
  monkeypatch.setattr('runners.flink_options.job_server_jar', lambda: '/jar')
  for kind in ('anomaly', 'beam_zscore'):
    bench_job = job.make_job(kind, 'cluster', 'b:9192', 'e:8197', 2, 4, [], 'f:8081', 'w:50000')
    assert f'--sdk_worker_parallelism={2 * PYTHON_STAGES_BOUND}' in bench_job.argv, kind
