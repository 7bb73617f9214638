"""The EXTERNAL Beam Python worker pool of the standalone cluster (runners/flink_cluster.sh).

Beam's own `python -m apache_beam.runners.worker.worker_pool_main` listens on every
interface and always starts its SDK workers without a state cache. This entry point starts
the same servicer on the loopback address, with the cache size as an option.

The cache stays off by default: Beam weighs every cached value with a deep size walk on
each write, and this job's state (per-shard bags of readings, the baselines side input) is
rewritten every bundle, so the walk costs more than the round trips it saves (measured in
docs/design.md, "The Flink runner").

  python -m runners.worker_pool --port 50000 [--state_cache_mb 0] [--host 127.0.0.1]
"""
import argparse
import logging
import signal
import sys
import threading
from typing import Optional, Sequence, Tuple

import grpc
from apache_beam.portability.api import beam_fn_api_pb2, beam_fn_api_pb2_grpc
from apache_beam.runners.worker.worker_pool_main import BeamFnExternalWorkerPoolServicer
from apache_beam.utils import thread_pool_executor

# Off: see above (Beam's LOOPBACK workers default to 100, WorkerOptions.max_cache_memory_usage_mb).
DEFAULT_STATE_CACHE_MB = 0


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--port', type=int, required=True, help='the pool\'s gRPC port')
  parser.add_argument('--host', default='127.0.0.1',
                      help='address to bind (default 127.0.0.1: loopback only)')
  parser.add_argument('--state_cache_mb', type=int, default=DEFAULT_STATE_CACHE_MB,
                      help='state and side-input cache of each SDK worker, in MB (default '
                      f'{DEFAULT_STATE_CACHE_MB}: off)')
  args = parser.parse_args(argv)
  if not 0 < args.port < 65536:
    parser.error(f'--port: {args.port} is not a TCP port')
  if args.state_cache_mb < 0:
    parser.error(f'--state_cache_mb: {args.state_cache_mb} is negative')
  return args


class WorkerPool(BeamFnExternalWorkerPoolServicer):
  """Beam's servicer, each SDK worker a process of its own, which it can stop all at once."""

  def stop_workers(self) -> None:
    for worker_id in list(self._worker_processes):
      self.StopWorker(beam_fn_api_pb2.StopWorkerRequest(worker_id=worker_id), None)


def serve(host: str, port: int, state_cache_mb: int) -> Tuple[WorkerPool, grpc.Server]:
  """Starts the pool on host:port."""
  pool = WorkerPool(use_process=True, state_cache_size=state_cache_mb << 20)
  server = grpc.server(thread_pool_executor.shared_unbounded_instance(),
                       options=[('grpc.http2.max_pings_without_data', 0),
                                ('grpc.http2.max_ping_strikes', 0)])
  beam_fn_api_pb2_grpc.add_BeamFnExternalWorkerPoolServicer_to_server(pool, server)
  if not server.add_insecure_port(f'{host}:{port}'):
    raise SystemExit(f'error: --port: cannot listen on {host}:{port}')
  server.start()
  return pool, server


def main(argv: Optional[Sequence[str]] = None) -> None:
  logging.basicConfig(format='%(asctime)s %(levelname)s %(message)s')
  logging.getLogger().setLevel(logging.INFO)  # Beam's import may have configured it already
  args = parse_args(argv)
  pool, server = serve(args.host, args.port, args.state_cache_mb)
  logging.info('worker pool on %s:%d, state cache %d MB per SDK worker', args.host, args.port,
               args.state_cache_mb)
  stopped = threading.Event()
  signal.signal(signal.SIGTERM, lambda *_: stopped.set())
  signal.signal(signal.SIGINT, lambda *_: stopped.set())
  stopped.wait()
  server.stop(grace=5).wait()
  pool.stop_workers()
  sys.exit(0)


if __name__ == '__main__':
  main()
