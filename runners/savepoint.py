"""Stop the job with a savepoint and start it again from it: upgrades without losing a reading.

  python -m runners.savepoint stop --job_name anomaly-detection [--drain]
      stops the running job with a savepoint (default folder .local/flink/savepoints) and
      prints its location as the last line, once the job has ended (without --drain: a
      savepoint, then a cancel; runners/flink_rest.stop_with_savepoint says why);
  python -m runners.savepoint latest [--checkpoints]
      prints the newest savepoint (or, with --checkpoints, the newest retained checkpoint:
      what is left after a crash or a cancel);
  python -m runners.savepoint resume <location> -- <the job's options>
      starts the job (python -m pipeline ...) from that savepoint or checkpoint.

Without --drain the savepoint holds the open windows, the Kafka offsets and the detector
state, and the resumed job continues where the old one stopped: what it read after the
savepoint is read again, nothing is skipped. The resumed job must be the same pipeline
(same steps; options such as thresholds may change). A reworked pipeline needs
--allow_non_restored_state among the job options to drop state of steps that are gone.
"""

import argparse
import glob
import os
import sys
from typing import List, Optional

from runners import flink_rest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAVEPOINTS = os.path.join(ROOT, '.local/flink/savepoints')
CHECKPOINTS = os.path.join(ROOT, '.local/flink/checkpoints')


def newest(folder_glob: str) -> Optional[str]:
  """The most recently completed savepoint/checkpoint folder matching the glob, as a URI.

  A folder counts only once Flink has written its _metadata (written last)."""
  done = [os.path.dirname(m) for m in glob.glob(os.path.join(folder_glob, '_metadata'))]
  if not done:
    return None
  return 'file://' + max(done, key=lambda d: os.path.getmtime(os.path.join(d, '_metadata')))


def stop(job_name: str, drain: bool, target_dir: str, rest: str) -> str:
  job = flink_rest.running_job(job_name, rest)
  return flink_rest.stop_with_savepoint(job['jid'], 'file://' + os.path.abspath(target_dir),
                                        drain=drain, rest=rest)


def resume_args(location: str, job_args: List[str]) -> List[str]:
  """The job's options with the savepoint to start from (replacing any given before)."""
  kept = [a for a in job_args if not a.startswith('--savepoint_path')]
  return kept + [f'--savepoint_path={location}']


def main(argv: Optional[List[str]] = None) -> None:
  argv = sys.argv[1:] if argv is None else argv
  job_args: List[str] = []
  if '--' in argv:
    split = argv.index('--')
    argv, job_args = argv[:split], argv[split + 1:]
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  commands = parser.add_subparsers(dest='command', required=True)
  stop_cmd = commands.add_parser('stop', help='stop a running job with a savepoint')
  stop_cmd.add_argument('--job_name', required=True, help='the job name given with --job_name')
  stop_cmd.add_argument('--drain', action='store_true',
                        help='fire every window before stopping (a final stop, not an upgrade)')
  stop_cmd.add_argument('--dir', default=SAVEPOINTS, help=f'savepoint folder (default {SAVEPOINTS})')
  stop_cmd.add_argument('--rest', default=flink_rest.DEFAULT_REST,
                        help=f'Flink REST address (default {flink_rest.DEFAULT_REST})')
  latest_cmd = commands.add_parser('latest', help='print the newest savepoint')
  latest_cmd.add_argument('--checkpoints', action='store_true',
                          help='the newest retained checkpoint instead')
  resume_cmd = commands.add_parser('resume', help='start the job from a savepoint: '
                                   'resume <location> -- <job options>')
  resume_cmd.add_argument('location', help='savepoint or checkpoint folder (file://...)')
  args = parser.parse_args(argv)

  if args.command == 'stop':
    try:
      print(stop(args.job_name, args.drain, args.dir, args.rest))
    except flink_rest.FlinkRestError as error:
      sys.exit(f'error: {error}')
  elif args.command == 'latest':
    found = (newest(os.path.join(CHECKPOINTS, '*', 'chk-*')) if args.checkpoints
             else newest(os.path.join(SAVEPOINTS, 'savepoint-*')))
    if not found:
      sys.exit('error: none found')
    print(found)
  else:
    if not job_args:
      sys.exit('error: resume needs the job options after --')
    from pipeline.main import main as run_job  # pylint: disable=import-outside-toplevel
    sys.argv = ['pipeline'] + resume_args(args.location, job_args)
    run_job()


if __name__ == '__main__':
  main()
