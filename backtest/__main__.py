"""`python -m backtest --data DIR --out DIR`: see backtest/run.py."""

import sys

from backtest.run import main

sys.exit(main())
