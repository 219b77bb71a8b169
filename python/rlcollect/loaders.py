"""Notebook loaders: a run's streams as polars LazyFrames or pandas DataFrames.

Files come from ``manifest.json``, so only complete, published parts are read.
A compacted stream's files are read in the generation folder the manifest
names (``dir``): a compaction that swaps the stream to a newer generation
meanwhile leaves them in place for its grace (30 s), so every row is read
exactly once. Parts of one stream can differ in schema (a new field starts a new part); each
part is cast to the stream's widest schema from the manifest and the parts are
unioned by column name.

``load("s3://BUCKET/PREFIX", run=...)`` reads the Delta Lake tables a live
run or ``rlcollect publish`` wrote (docs/SPEC.md §8) through polars
``scan_delta`` (which needs the ``deltalake`` package).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Dict, List, Optional, Union

PathLike = Union[str, Path]

_POLARS_TYPES = {
    "bool": "Boolean",
    "int64": "Int64",
    "uint64": "UInt64",
    "float64": "Float64",
    "string": "String",
}


def _manifest(run_dir: Path) -> dict:
    path = run_dir / "manifest.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{run_dir} is not an rlcollect run (no manifest.json)") from None


def _dtype(pl, name: str):
    if name == "timestamp":
        return pl.Datetime("ms", "UTC")
    if name == "null":
        return pl.Null
    return getattr(pl, _POLARS_TYPES[name])


def _file_path(run_dir: Path, entry: dict, f: dict) -> Path:
    """Where a listed file is: in the stream's generation, or its plain folder."""
    gen = entry.get("dir")
    if gen:
        return run_dir / gen / f["path"].rsplit("/", 1)[-1]
    return run_dir / f["path"]


def files(run_dir: PathLike = "analysis_data/latest", stream: str = "trades", fmt: str = "parquet") -> List[str]:
    """The paths of ``stream``'s published ``fmt`` files, in ``_seq`` order, for
    any engine: ``duckdb.read_parquet(files(run, "trades"))``.

    Exactly once at every moment, also while a compaction lands: the paths are
    in the generation the manifest names, which stays for the grace (30 s)
    after a newer one replaced it. A glob of ``RUN/STREAM/*.parquet`` is
    not: DuckDB and pyarrow skip, without an error, a name they listed that
    was merged away before they looked at it (docs/SPEC.md §3).
    """
    run = Path(run_dir)
    entry = _manifest(run)["streams"].get(stream)
    if entry is None:
        return []
    return [str(_file_path(run, entry, f)) for f in entry["files"] if f["format"] == fmt]


def load(run_dir: PathLike = "analysis_data/latest", *, run: Optional[str] = None,
         storage_options: Optional[Dict[str, str]] = None) -> Dict[str, "polars.LazyFrame"]:  # noqa: F821
    """``{stream: polars.LazyFrame}`` for every stream of the run.

    ``run_dir`` may be ``s3://BUCKET/PREFIX``: the Delta tables there, every
    run of every host (column ``run_id``), or only ``run``. The store is
    found as the binary finds it (``AWS_ENDPOINT_URL``, ``AWS_*`` keys)
    unless ``storage_options`` says otherwise.
    """
    if str(run_dir).startswith("s3://"):
        return _load_delta(str(run_dir), run, storage_options)
    # A manifest read just before a compaction committed can name a generation
    # whose grace ran out before its files were opened (a very slow reader):
    # read the manifest again, which names the files that are there now.
    for attempt in range(5):
        try:
            return _load(Path(run_dir))
        except FileNotFoundError:
            if attempt == 4:
                raise
    raise AssertionError("unreachable")


def delta_storage_options() -> Dict[str, str]:
    """The ``storage_options`` for polars/deltalake, found as the binary
    finds them: the ``AWS_*`` variables, else the profile ``$AWS_PROFILE``
    (or ``default``) of ``~/.aws/credentials`` and ``~/.aws/config``
    (plain-HTTP endpoints allowed, region ``us-east-1`` unless one is set)."""
    profile = _aws_profile()
    names = {"AWS_ENDPOINT_URL": "endpoint_url", "AWS_ACCESS_KEY_ID": "aws_access_key_id",
             "AWS_SECRET_ACCESS_KEY": "aws_secret_access_key", "AWS_SESSION_TOKEN": "aws_session_token",
             "AWS_REGION": "region"}
    keys_from_env = bool(os.environ.get("AWS_ACCESS_KEY_ID"))
    opts = {}
    for var, key in names.items():
        from_profile = key == "region" or key == "endpoint_url" or not keys_from_env
        value = os.environ.get(var) or (profile.get(key) if from_profile else None)
        if value:
            opts[var] = value
    opts.setdefault("AWS_REGION", os.environ.get("AWS_DEFAULT_REGION") or "us-east-1")
    if opts.get("AWS_ENDPOINT_URL", "").startswith("http://"):
        opts["AWS_ALLOW_HTTP"] = "true"
    return opts


def _aws_profile() -> Dict[str, str]:
    """The settings of ``$AWS_PROFILE`` (or ``default``) from the AWS shared files."""
    import configparser

    name = os.environ.get("AWS_PROFILE", "default")
    home = Path.home()
    out: Dict[str, str] = {}
    files = ((os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or home / ".aws" / "credentials", name),
             (os.environ.get("AWS_CONFIG_FILE") or home / ".aws" / "config",
              name if name == "default" else f"profile {name}"))
    for path, section in files:
        parser = configparser.ConfigParser()
        try:
            parser.read(path)
        except configparser.Error:
            continue
        if parser.has_section(section):
            for k, v in parser.items(section):
                out.setdefault(k, v)
    return out


def _load_delta(dest: str, run: Optional[str], storage_options: Optional[Dict[str, str]]):
    import polars as pl

    from .transport import find_binary

    opts = storage_options if storage_options is not None else delta_storage_options()
    env = dict(os.environ, **{k: v for k, v in opts.items() if k.startswith("AWS_")})
    listed = subprocess.run([find_binary(), "tables", dest], env=env, capture_output=True, text=True)
    if listed.returncode != 0:
        raise RuntimeError(f"cannot list the tables in {dest}: {listed.stderr.strip()}")
    frames = {}
    for stream in listed.stdout.split():
        frame = pl.scan_delta(f"{dest.rstrip('/')}/{stream}", storage_options=opts)
        frames[stream] = frame.filter(pl.col("run_id") == run) if run is not None else frame
    return frames


def _load(run_dir: Path) -> Dict[str, "polars.LazyFrame"]:  # noqa: F821
    import polars as pl

    m = _manifest(run_dir)
    frames = {}
    for stream, entry in m["streams"].items():
        target = {f["name"]: f["type"] for f in entry["schema"]}
        parquet = [f for f in entry["files"] if f["format"] == "parquet"]
        parts = []
        if parquet:
            scans = [pl.scan_parquet(_file_path(run_dir, entry, f)) for f in parquet]
        else:
            scans = [pl.scan_csv(_file_path(run_dir, entry, f), infer_schema_length=None) for f in entry["files"]]
        for scan in scans:
            have = scan.collect_schema()
            casts = [
                pl.col(c).cast(_dtype(pl, t))
                for c, t in target.items()
                if c in have and t != "null" and have[c] != _dtype(pl, t)
            ]
            parts.append(scan.with_columns(casts) if casts else scan)
        if parts:
            frames[stream] = pl.concat(parts, how="diagonal_relaxed")
    return frames


def load_pandas(run_dir: PathLike = "analysis_data/latest") -> Dict[str, "pandas.DataFrame"]:  # noqa: F821
    """``{stream: pandas.DataFrame}`` for every stream of the run."""
    return {stream: lf.collect().to_pandas() for stream, lf in load(run_dir).items()}


def runs(out: PathLike = "analysis_data") -> List[dict]:
    """The runs under ``out``, oldest first: run id, status, rows per stream, rejected lines."""
    result = []
    for manifest in sorted(Path(out).glob("*/manifest.json")):
        if manifest.parent.is_symlink():
            continue  # `latest` points at a run listed under its own name
        try:
            m = json.loads(manifest.read_text())
        except (OSError, ValueError):
            continue
        rows = {s: e["rows"] for s, e in m["streams"].items()}
        result.append({
            "run_id": m["run_id"],
            "path": str(manifest.parent),
            "status": m["status"],
            "started_at": m["started_at"],
            "updated_at": m["updated_at"],
            "rows": rows,
            "total_rows": sum(rows.values()),
            "rejected": m["rejected"],
        })
    result.sort(key=lambda r: r["started_at"])
    return result
