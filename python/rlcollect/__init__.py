"""rlcollect: a pure-Python client for the rlcollect sidecar, Freqtrade/FreqAI
hooks, and notebook loaders.

    from rlcollect import Collector, load
    with Collector("analysis_data", run="my-run") as c:
        c.trade(pair="BTC/USDT", profit_abs=1.2)
    frames = load("analysis_data/my-run")   # {stream: polars.LazyFrame}
    report("analysis_data/my-run")          # one HTML file: analysis_data/my-run/report.html
"""

from .client import Collector, encode, find_binary, shared_collector
from .loaders import load, load_pandas, runs
from .report import report

__all__ = ["Collector", "encode", "find_binary", "shared_collector", "load", "load_pandas", "runs", "report"]
__version__ = "0.1.0"
