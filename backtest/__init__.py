"""Offline backtesting: replay labelled series and score detectors the NAB way."""
