"""Shared pytest setup: the repo root on sys.path, markers, a DirectRunner fix."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def pytest_configure(config):
  config.addinivalue_line('markers', 'e2e: needs real Kafka and Flink (make test-e2e)')
  config.addinivalue_line('markers', 'fault: kills and restarts services (make test-fault)')
  config.addinivalue_line('markers', 'soak: a week of event time on the cluster (make test-soak)')
  # Third-party noise on every run (kafka-python's importlib use, Google's grpcio notice).
  config.addinivalue_line('filterwarnings', 'ignore::DeprecationWarning:kafka.*')
  config.addinivalue_line('filterwarnings', 'ignore::DeprecationWarning:importlib.*')
  config.addinivalue_line('filterwarnings', 'ignore::FutureWarning:google.*')
  _let_empty_bundles_reach_side_input_pardos()


def _let_empty_bundles_reach_side_input_pardos():
  """Works around a BundleBasedDirectRunner bug (Beam 2.70).

  When a stateful DoFn's timer fires without output, the runner still passes
  an empty bundle downstream; a ParDo with a windowed side input then crashes
  mapping the bundle's (absent) window: `'NoneType' object has no attribute
  'max_timestamp'` in executor.TransformExecutor.call, and the test hangs.
  An empty bundle needs no side input, so we give it the earliest window,
  whose side input is ready at once. Nothing else changes.
  """
  from apache_beam.runners.direct import executor
  from apache_beam.transforms.window import IntervalWindow
  from apache_beam.utils.timestamp import MIN_TIMESTAMP

  original_call = executor.TransformExecutor.call
  if getattr(original_call, 'patched_for_empty_bundles', False):
    return

  def call(self, state_sampler):
    if self._latest_main_input_window is None and self._applied_ptransform.side_inputs:
      self._latest_main_input_window = IntervalWindow(MIN_TIMESTAMP, MIN_TIMESTAMP + 1)
    return original_call(self, state_sampler)

  call.patched_for_empty_bundles = True
  executor.TransformExecutor.call = call
