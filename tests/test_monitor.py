"""The monitor's alert line."""

from runners.monitor import format_alert


def test_alert_line_shows_time_sensor_value_mean_and_score():
  alert = {'ts': '2026-11-24T05:00:01.250Z', 'sensor_id': 'pump-7', 'value': 142.5,
           'window_mean': 40.0, 'score': 0.9}
  assert format_alert(alert, 'spike') == (
      'ALERT 2026-11-24 05:00:01.250 pump-7       value=   142.50 mean=    40.00 score=0.900 (spike)')


def test_alert_without_a_mean_still_prints():
  line = format_alert({'ts': '2026-11-24T05:00:01.250Z', 'sensor_id': 's', 'value': 1.0,
                       'window_mean': None, 'score': None})
  assert 'mean=        -' in line and line.endswith('score=0.000')
