"""Starts the project's services (for the demo and the e2e tests), and stops exactly the ones it started.

A service that is already running (e.g. a developer's `runners/kafka.sh start`) is used
and left running; one this module starts is stopped at the end of the test session, also
when a test or the demo fails.
"""

import os
import subprocess
from typing import Dict, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _script(name: str, command: str, check: bool = True,
            env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
  return subprocess.run([os.path.join(ROOT, 'runners', name), command], cwd=ROOT,
                        check=check, capture_output=True, text=True,
                        env=dict(os.environ, **env) if env else None)


class Services:
  """ensure('kafka.sh') starts a service unless it runs; stop_started() undoes that.

  `env` adds environment variables for the script, e.g. another port for a second instance;
  the same variables are used to stop it.
  """

  def __init__(self):
    self.started: List[str] = []  # script names, in start order
    self._envs: List[Optional[Dict[str, str]]] = []  # the env each was started with

  def ensure(self, script: str, env: Optional[Dict[str, str]] = None) -> None:
    if _script(script, 'status', check=False, env=env).returncode == 0:
      return
    result = _script(script, 'start', check=False, env=env)
    if result.returncode != 0:
      raise RuntimeError(f'runners/{script} start failed:\n{result.stdout}\n{result.stderr}')
    self.started.append(script)
    self._envs.append(env)

  def stop_started(self) -> None:
    for script, env in reversed(list(zip(self.started, self._envs))):
      _script(script, 'stop', check=False, env=env)
    self.started.clear()
    self._envs.clear()
