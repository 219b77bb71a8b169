"""``rlcollect.report(run)``: one self-contained HTML file that shows a run,
or several runs side by side, written by the ``rlcollect report`` binary
(it reads the run's Parquet parts at full resolution and draws downsampled
series, so a 10 M-row run still makes a light page).

    import rlcollect
    path = rlcollect.report("analysis_data/latest")          # RUN/report.html
    rlcollect.report("runs/seed1", "runs/seed2", out="seeds.html")
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Optional, Union

from .client import find_binary

PathLike = Union[str, Path]


def report(
    run: PathLike = "analysis_data/latest",
    *more_runs: PathLike,
    out: Optional[PathLike] = None,
    watch: bool = False,
    points: Optional[int] = None,
) -> Path:
    """Writes the report and returns its path.

    ``run`` and ``more_runs`` are run directories (several are overlaid, one
    colour per run). ``out`` defaults to ``RUN/report.html`` for one run and
    ``./report.html`` for several. ``watch=True`` blocks, rewriting the file
    at each checkpoint until the run is no longer running. ``points`` is the
    number of points per drawn series (default 2000). Raises
    ``RuntimeError`` with the binary's message when it fails.
    """
    argv = [find_binary(), "report", *(str(r) for r in (run, *more_runs))]
    if out is not None:
        argv += ["--output", str(out)]
    if watch:
        argv.append("--watch")
    if points is not None:
        argv += ["--points", str(int(points))]
    done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"rlcollect report failed (exit {done.returncode}): {done.stderr.strip()}")
    return Path(done.stdout.strip().splitlines()[-1])
