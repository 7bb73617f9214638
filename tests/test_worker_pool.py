"""The cluster's Python worker pool entry point (runners/worker_pool.py)."""

import socket

import pytest

from runners import worker_pool


def test_defaults_are_loopback_and_no_state_cache():
  args = worker_pool.parse_args(['--port', '50000'])
  assert (args.host, args.port, args.state_cache_mb) == ('127.0.0.1', 50000, 0)


@pytest.mark.parametrize('argv, option', [
    (['--port', '0'], '--port'),
    (['--port', '70000'], '--port'),
    (['--port', '50000', '--state_cache_mb', '-1'], '--state_cache_mb'),
])
def test_bad_options_fail_naming_the_option(argv, option, capsys):
  with pytest.raises(SystemExit):
    worker_pool.parse_args(argv)
  assert option in capsys.readouterr().err


def _free_port() -> int:
  with socket.socket() as probe:
    probe.bind(('127.0.0.1', 0))
    return probe.getsockname()[1]


def listening_addresses(port: int):
  """The local addresses of the sockets listening on port (Linux /proc/net/tcp and tcp6;
  gRPC binds 127.0.0.1 as the IPv4-mapped ::ffff:127.0.0.1)."""
  found = []
  for table in ('/proc/net/tcp', '/proc/net/tcp6'):
    with open(table, encoding='ascii') as handle:
      for line in list(handle)[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(':')
        if state == '0A' and int(hex_port, 16) == port:  # 0A: LISTEN
          ipv4 = bytes.fromhex(address[-8:])[::-1]  # little-endian, mapped address last
          mapped = len(address) == 8 or address[:24] == '0000000000000000FFFF0000'
          found.append('.'.join(map(str, ipv4)) if mapped else address)
  return found


def test_the_pool_listens_on_loopback_only_with_its_cache():
  port = _free_port()
  pool, server = worker_pool.serve('127.0.0.1', port, state_cache_mb=3)
  try:
    socket.create_connection(('127.0.0.1', port), timeout=2).close()
    assert listening_addresses(port) == ['127.0.0.1']  # not 0.0.0.0 or ::
    assert pool._state_cache_size == 3 << 20  # pylint: disable=protected-access
  finally:
    server.stop(0).wait()
