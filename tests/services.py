"""Starts the project's services for e2e tests, and stops exactly the ones it started.

A service that is already running (e.g. a developer's `runners/kafka.sh start`) is used
and left running; one this module starts is stopped at the end of the test session, also
when a test fails.
"""

import os
import subprocess
from typing import List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _script(name: str, command: str, check: bool = True) -> subprocess.CompletedProcess:
  return subprocess.run([os.path.join(ROOT, 'runners', name), command], cwd=ROOT,
                        check=check, capture_output=True, text=True)


class Services:
  """ensure('kafka.sh') starts a service unless it runs; stop_started() undoes that."""

  def __init__(self):
    self.started: List[str] = []

  def ensure(self, script: str) -> None:
    if _script(script, 'status', check=False).returncode == 0:
      return
    result = _script(script, 'start', check=False)
    if result.returncode != 0:
      raise RuntimeError(f'runners/{script} start failed:\n{result.stdout}\n{result.stderr}')
    self.started.append(script)

  def stop_started(self) -> None:
    for script in reversed(self.started):
      _script(script, 'stop', check=False)
    self.started.clear()
