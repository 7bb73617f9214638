"""Stand-ins for Beam's state cells, timers and counters, for calling stateful DoFns directly."""


class State:
  """A ReadModifyWrite state cell."""

  def __init__(self, value=None):
    self.value = value

  def read(self):
    return self.value

  def write(self, value):
    self.value = value

  def clear(self):
    self.value = None


class Bag:
  """A bag state."""

  def __init__(self):
    self.items = []

  def add(self, item):
    self.items.append(item)

  def read(self):
    return list(self.items)

  def clear(self):
    self.items = []


class Timer:
  """A timer; `at` is the last time it was set to, `history` every one, `tags` the last
  time of each dynamic timer tag."""

  def __init__(self):
    self.at = None
    self.history = []
    self.tags = {}

  def set(self, ts, dynamic_timer_tag=''):
    self.at = ts
    self.history.append(ts)
    self.tags[dynamic_timer_tag] = ts


class Counter:
  def __init__(self):
    self.count = 0

  def inc(self, n=1):
    self.count += n
