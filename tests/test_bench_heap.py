"""bench/heap.py: the JVMs' heap floors from Flink's REST API, and their trend."""

from bench import heap

MB = 1 << 20


def test_heap_used_of_the_jobmanager_and_every_taskmanager():
  answers = {
      f'/jobmanager/metrics?get={heap.HEAP_USED}': [{'id': heap.HEAP_USED, 'value': '100'}],
      '/taskmanagers': {'taskmanagers': [{'id': 'tm-1'}, {'id': 'tm-2'}]},
      f'/taskmanagers/tm-1/metrics?get={heap.HEAP_USED}': [{'id': heap.HEAP_USED, 'value': '7'}],
      f'/taskmanagers/tm-2/metrics?get={heap.HEAP_USED}': [],  # not reported yet
  }
  assert heap.heap_used(answers.__getitem__) == {'jobmanager': 100.0, 'taskmanager tm-1': 7.0}


def test_the_floor_of_each_minute_is_its_smallest_sample():
  points = [(0, 50), (20, 10), (59, 40), (60, 30), (119, 35), (130, 5)]
  assert heap.floors(points) == [(0, 10), (60, 30), (120, 5)]


def sawtooth(minutes, floor_mb_at):
  """A heap that fills for a minute and is collected back to its floor, sampled every 5 s."""
  return [(t, (floor_mb_at(t / 60) + (t % 60) / 2) * MB) for t in range(0, minutes * 60, 5)]


def test_a_sawtooth_on_a_flat_floor_has_no_trend_a_rising_floor_has():
  flat = heap.floor_trend(sawtooth(10, lambda m: 200), since=0)
  assert flat['mb_per_min'] == 0.0 and flat['floors_mb'] == [200.0] * 9  # the last minute left out
  leak = heap.floor_trend(sawtooth(10, lambda m: 200 + 3 * int(m)), since=0)
  assert leak['mb_per_min'] == 3.0


def test_no_trend_from_fewer_than_three_whole_minutes_after_the_warmup():
  assert heap.floor_trend(sawtooth(10, lambda m: 200), since=420) is None
  assert heap.floor_trend(sawtooth(10, lambda m: 200), since=300) is not None


def test_a_failed_sample_is_a_gap_not_an_error():
  calls = []

  def get(path):
    calls.append(path)
    if len(calls) == 1:
      raise OSError('connection refused')
    return [{'id': heap.HEAP_USED, 'value': '1'}] if 'metrics' in path else {'taskmanagers': []}

  sampler = heap.HeapSampler(get, clock=lambda: 12.0)
  sampler.sample()
  sampler.sample()
  assert sampler.errors == 1 and sampler.series == {'jobmanager': [(12.0, 1.0)]}
