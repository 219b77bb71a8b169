"""rlcollect: a pure-Python client for the rlcollect sidecar, Freqtrade/FreqAI
hooks, and notebook loaders.

    from rlcollect import Collector, load
    with Collector("analysis_data", run="my-run") as c:   # joins or starts the sidecar
        c.trade(pair="BTC/USDT", profit_abs=1.2)          # safe in the run's ring once it returns
    frames = load("analysis_data/my-run")   # {stream: polars.LazyFrame}
    paths = files("analysis_data/my-run", "trades")   # for DuckDB, pyarrow, ...
    report("analysis_data/my-run")          # one HTML file: analysis_data/my-run/report.html
"""

from .client import Collector
from .shared import shared_collector
from .encoding import encode
from .loaders import files, load, load_pandas, runs
from .report import report
from .transport import find_binary

__all__ = ["Collector", "encode", "find_binary", "shared_collector", "files", "load", "load_pandas", "runs", "report"]
__version__ = "0.1.0"
