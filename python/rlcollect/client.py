"""The client: a cheap, thread-safe way for a Python process to hand records to
an ``rlcollect`` sidecar.

Records are encoded at once (orjson when installed, the stdlib otherwise) and
buffered; a background thread writes the buffer every ``flush_secs`` (and
whenever it passes 64 KiB), so a call costs microseconds. The client never
raises into the strategy because the sidecar died or the pipe broke: it logs
once and spools every further record to ``RUN/spool-<pid>.ndjson``, which
``rlcollect run`` (resuming the run) and ``rlcollect recover`` ingest.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as _dt
import hashlib
import json
import logging
import os
import shutil
import socket as _socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, Optional

try:  # the fastest encoder available
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised when orjson is absent
    _orjson = None

log = logging.getLogger("rlcollect")

_FLUSH_BYTES = 64 * 1024
_PLAIN = (str, int, bool, type(None))


def _convert(v: Any) -> Any:
    """Turns numpy/pandas/datetime values into what the wire format expects."""
    if isinstance(v, float):
        return v  # NaN and ±inf are handled by the encoder choice
    if isinstance(v, _dt.datetime):
        if v.tzinfo is None:
            return v.isoformat()  # naive = UTC on the collector's side
        return v.astimezone(_dt.timezone.utc).isoformat()
    if isinstance(v, _dt.date):
        return v.isoformat()
    item = getattr(v, "item", None)  # numpy scalars, 0-d arrays
    if item is not None and getattr(v, "ndim", 0) == 0:
        try:
            return _convert(item())
        except (TypeError, ValueError):
            pass
    if type(v).__name__ in ("NaTType", "NAType"):
        return None
    iso = getattr(v, "isoformat", None)  # pandas Timestamp is a datetime; others
    if iso is not None:
        return iso()
    tolist = getattr(v, "tolist", None)  # numpy arrays, pandas Series
    if tolist is not None:
        return tolist()
    if isinstance(v, dict):
        return {str(k): _convert(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_convert(x) for x in v]
    return str(v)


def _default(v: Any) -> Any:
    if isinstance(v, float):
        return float(v)  # float subclasses (numpy.float64)
    out = _convert(v)
    if out is v:
        raise TypeError(f"cannot encode {type(v).__name__}")
    return out


if _orjson is not None:
    _ORJSON_OPTS = _orjson.OPT_SERIALIZE_NUMPY | _orjson.OPT_APPEND_NEWLINE | _orjson.OPT_NON_STR_KEYS


def _encode_exact(record: Dict[str, Any]) -> bytes:
    """The stdlib path: writes NaN/±inf as Python's ``NaN``/``Infinity`` tokens,
    which the collector stores as IEEE values."""
    return (json.dumps(record, default=_default, separators=(",", ":")) + "\n").encode()


def encode(record: Dict[str, Any]) -> bytes:
    """One NDJSON line (with ``\\n``). NaN/±inf become ``NaN``/``Infinity`` tokens.

    Fast path: orjson (numpy and datetimes natively). orjson writes NaN as
    ``null``, so any output holding ``null`` is encoded again exactly by the
    stdlib: records with None or NaN pay a little more, none is ever wrong."""
    if _orjson is not None:
        try:
            out = _orjson.dumps(record, default=_default, option=_ORJSON_OPTS)
        except TypeError:
            out = None
        if out is not None and b"null" not in out:
            return out
    return _encode_exact(record)


def find_binary() -> str:
    """The ``rlcollect`` executable: ``RLCOLLECT_BIN``, then ``PATH``, then the
    one ``pip install`` put beside this package (the environment's scripts
    folder, which is not on ``PATH`` when a venv's Python runs unactivated)."""
    env = os.environ.get("RLCOLLECT_BIN")
    if env:
        if os.access(env, os.X_OK):
            return env
        raise FileNotFoundError(f"RLCOLLECT_BIN={env!r} is not an executable file")
    found = shutil.which("rlcollect")
    if found:
        return found
    for scheme in _install_schemes():
        candidate = os.path.join(scheme, "rlcollect")
        if os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError(
        "the rlcollect binary was not found. `pip install ./python` (from the rlcollect repository) installs "
        "it with this client; or set RLCOLLECT_BIN=/path/to/rlcollect, or put it on PATH."
    )


def _install_schemes() -> list:
    """Scripts folders where pip may have installed the binary: this
    interpreter's environment, then the user scheme (``pip install --user``)."""
    import sysconfig

    folders = [sysconfig.get_path("scripts")]
    try:
        folders.append(sysconfig.get_path("scripts", f"{os.name}_user"))
    except KeyError:  # pragma: no cover - platforms without a user scheme
        pass
    return [f for f in folders if f]


def default_run_id() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def socket_path(run_dir: Path) -> str:
    """The well-known socket of a run's sidecar: ``RUN/collector.sock``, or a
    name in the temp folder derived from the run's path when that path is too
    long for a Unix socket (about 100 bytes)."""
    run_dir = Path(run_dir).resolve()
    path = str(run_dir / "collector.sock")
    if len(path.encode()) < 100:
        return path
    digest = hashlib.sha1(str(run_dir).encode()).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), f"rlcollect-{digest}.sock")


@contextlib.contextmanager
def _spawn_lock(run_dir: Path):
    """Serialises join-or-spawn between processes: exactly one spawns."""
    import fcntl

    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / ".spawn.lock", "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _connect(path: str) -> Optional["_socket.socket"]:
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        s.connect(path)
        return s
    except OSError:
        s.close()
        return None


class Collector:
    """Sends records to an ``rlcollect`` sidecar.

    With no ``socket`` it starts ``rlcollect run`` as a child process and writes
    to its stdin. With ``socket=PATH`` it connects to a running sidecar
    (``rlcollect run --listen PATH``) and names itself with ``source``.
    """

    def __init__(
        self,
        out: str = "analysis_data",
        run: Optional[str] = None,
        *,
        socket: Optional[str] = None,
        source: Optional[str] = None,
        every_candles: int = 1000,
        every_secs: float = 60,
        fmt: str = "parquet",
        flush_secs: float = 0.2,
        extra_args: tuple = (),
    ) -> None:
        self.out = Path(out)
        self.run = run or os.environ.get("RLCOLLECT_RUN") or default_run_id()
        # Processes this one starts later (hyperopt, SubprocVecEnv workers)
        # inherit the run and join it.
        os.environ.setdefault("RLCOLLECT_RUN", self.run)
        self.run_dir = self.out / self.run
        self.source = source or f"{Path(sys.argv[0] or 'python').name}-{os.getpid()}"
        self._lock = threading.Lock()
        self._buf = bytearray()
        self._closed = False
        self._dead = False
        self._spool = None
        self._proc: Optional[subprocess.Popen] = None
        self._sock = None
        self._pid: Optional[int] = None
        if socket is not None:
            self._join(socket)
        else:
            sock_path = socket_path(self.run_dir)
            with _spawn_lock(self.run_dir):
                live = _connect(sock_path)
                if live is not None:
                    self._join(sock_path, live)
                else:
                    self._spawn(sock_path, every_candles, every_secs, fmt, extra_args)
        self._write_now(encode({"stream": "control", "op": "hello", "source": self.source}))
        self._flusher = threading.Thread(target=self._flush_loop, args=(flush_secs,), name="rlcollect-flush",
                                         daemon=True)
        self._flusher.start()
        atexit.register(self.close)

    def _join(self, path: str, sock: Optional["_socket.socket"] = None) -> None:
        self._sock = sock or _connect(path)
        if self._sock is None:
            raise ConnectionError(f"no rlcollect sidecar is listening on {path}")
        self._out = self._sock.makefile("wb", buffering=0)
        self._pid = _peer_pid(self._sock)

    def _spawn(self, sock_path: str, every_candles: int, every_secs: float, fmt: str, extra_args: tuple) -> None:
        cmd = [find_binary(), "run", "--out", str(self.out), "--run", self.run, "--listen", sock_path,
               "--exit-when-idle", "--wait-lock", "120", "--every-candles", str(every_candles),
               "--every-secs", str(every_secs), "--format", fmt, *extra_args]
        # Its own session: a Ctrl-C meant for the strategy does not kill the
        # collector; it ends when its last producer leaves.
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, start_new_session=True)
        self._pid = self._proc.pid
        self._out = self._proc.stdin
        deadline = time.monotonic() + 150
        while True:  # ready once its socket accepts: then others may join
            code = self._proc.poll()
            if code is not None:
                raise RuntimeError(f"rlcollect run exited with code {code} (see its messages above): {' '.join(cmd)}")
            probe = _connect(sock_path)
            if probe is not None:
                # The sidecar may list the probe among the connected producers
                # (in a manifest) after it left; named as us, close() does not
                # take it for another producer and stop waiting.
                try:
                    probe.sendall(encode({"stream": "control", "op": "hello", "source": self.source}))
                except OSError:
                    pass
                probe.close()
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"rlcollect run did not open {sock_path} within 150 s")
            time.sleep(0.02)

    # -- records -------------------------------------------------------------

    def send(self, stream: str, **fields: Any) -> None:
        """Sends one record of ``stream`` (a core stream or your own name)."""
        fields["stream"] = stream
        self._push(fields)

    def _push(self, fields: Dict[str, Any]) -> None:
        stream = fields["stream"]
        try:
            line = encode(fields)
        except Exception as e:  # never raise into the strategy
            log.warning("rlcollect: dropped a record of %s that cannot be encoded: %s", stream, e)
            return
        with self._lock:
            if self._closed:
                return
            self._buf += line
            if len(self._buf) >= _FLUSH_BYTES:
                self._flush_locked()

    def trade(self, **fields: Any) -> None:
        """A closed trade (``pair`` required)."""
        fields["stream"] = "trades"
        self._push(fields)

    def episode(self, **fields: Any) -> None:
        """The end of an RL episode (``episode`` required)."""
        fields["stream"] = "rl_episodes"
        self._push(fields)

    def prediction(self, **fields: Any) -> None:
        """A model prediction (``ts`` and ``pair`` required)."""
        fields["stream"] = "predictions"
        self._push(fields)

    def signal(self, **fields: Any) -> None:
        """A signal propagation step (``ts`` and ``pair`` required)."""
        fields["stream"] = "signal_propagation"
        self._push(fields)

    def decision(self, **fields: Any) -> None:
        """An agent step (``ts`` and ``pair`` required)."""
        fields["stream"] = "model_decisions"
        self._push(fields)

    def candle(self, **fields: Any) -> None:
        """A candle tick: advances the collector's checkpoint counter."""
        fields["stream"] = "candle"
        self._push(fields)

    def checkpoint(self) -> None:
        """Asks the sidecar to checkpoint now (sends what is buffered first)."""
        with self._lock:
            if self._closed:
                return
            self._buf += b'{"stream":"control","op":"checkpoint"}\n'
            self._flush_locked()

    # -- lifetime ------------------------------------------------------------

    @property
    def pid(self) -> Optional[int]:
        """The sidecar's process id."""
        return self._pid

    @property
    def spooling(self) -> bool:
        """True once the sidecar was lost and records go to the spool file."""
        return self._dead

    def close(self, timeout: float = 120.0) -> Optional[dict]:
        """Sends what is left and ends this producer. A sidecar this client
        started does its final flush; returns the run's summary when available."""
        with self._lock:
            if self._closed:
                return None
            self._flush_locked()
            self._closed = True
            try:
                if not self._dead:
                    self._out.close()
            except OSError:
                pass
            if self._sock is not None:
                try:
                    self._sock.close()
                except OSError:
                    pass
            if self._spool is not None:
                self._spool.flush()
                os.fsync(self._spool.fileno())
                self._spool.close()
        try:
            atexit.unregister(self.close)
        except Exception:
            pass
        if self._proc is not None and not self._wait_for_sidecar(timeout):
            return None
        summary = self.run_dir / "summary.json"
        try:
            return json.loads(summary.read_text())
        except (OSError, ValueError):
            return None

    def _wait_for_sidecar(self, timeout: float) -> bool:
        """Waits for the sidecar this client started to finish its final flush,
        unless other producers are still connected to it (it then goes on
        without us). True when it finished."""
        deadline = time.monotonic() + timeout
        named_seen = unnamed_seen = 0
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return True
            try:
                connected = json.loads((self.run_dir / "manifest.json").read_text()).get("connected", [])
            except (OSError, ValueError):
                connected = []
            named, unnamed = _other_producers(connected, self.source)
            named_seen = named_seen + 1 if named else 0
            unnamed_seen = unnamed_seen + 1 if unnamed and not named else 0
            # A named producer is another client: stable for 0.1 s, not a
            # passing one. An unnamed connection may be our own readiness probe
            # that a busy sidecar has not yet seen leave: believe it after 5 s.
            if named_seen >= 5 or unnamed_seen >= 250:
                return False
            time.sleep(0.02)
        log.error("rlcollect: the sidecar (pid %s) did not finish within %s s", self._pid, timeout)
        return False

    def __enter__(self) -> "Collector":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- internals -------------------------------------------------------------

    def _flush_loop(self, every: float) -> None:
        while True:
            time.sleep(every)
            with self._lock:
                if self._closed:
                    return
                self._flush_locked()

    def _write_now(self, data: bytes) -> None:
        with self._lock:
            self._buf += data
            self._flush_locked()

    def _flush_locked(self) -> None:
        if not self._buf:
            return
        data = bytes(self._buf)
        self._buf.clear()
        if not self._dead:
            try:
                self._out.write(data)
                self._out.flush()
                return
            except (BrokenPipeError, ConnectionError, OSError, ValueError) as e:
                self._dead = True
                log.error(
                    "rlcollect: the sidecar (pid %s) is gone (%s); spooling records to %s",
                    self._pid, e, self._spool_path(),
                )
        self._to_spool(data)

    def _spool_path(self) -> Path:
        return self.run_dir / f"spool-{os.getpid()}.ndjson"

    def _to_spool(self, data: bytes) -> None:
        try:
            if self._spool is None:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                self._spool = open(self._spool_path(), "ab")
                try:  # held while we write: `rlcollect` ingests only unlocked spools
                    import fcntl

                    fcntl.flock(self._spool.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except (ImportError, OSError):
                    pass
                # Name the producer for the records ingested from the spool.
                self._spool.write(encode({"stream": "control", "op": "hello", "source": self.source}))
            self._spool.write(data)
            self._spool.flush()
        except OSError as e:  # pragma: no cover - a full disk under the strategy
            log.error("rlcollect: cannot spool records (%s); they are lost", e)


_SHARED: Dict[tuple, Collector] = {}
_SHARED_LOCK = threading.Lock()


def shared_collector(out: str = "analysis_data", run: Optional[str] = None, **kwargs: Any) -> Collector:
    """This process's ``Collector`` for ``out``/``run``, made on the first call.

    Every later call (another strategy instance, a thread, a helper) gets the
    same one, so a process joins the run's sidecar once. A forked child has
    another pid and makes its own. The registry lives here, not on the caller's
    object, so objects that get pickled (a hyperopt strategy) hold no collector.
    """
    run = run or os.environ.get("RLCOLLECT_RUN") or default_run_id()
    # Looked up as given first: callbacks call this once per candle, and
    # resolving the path costs tens of microseconds.
    given = (os.getpid(), str(out), run)
    collector = _SHARED.get(given)
    if collector is not None and not collector._closed:
        return collector
    key = (given[0], str(Path(out).resolve()), run)
    with _SHARED_LOCK:
        collector = _SHARED.get(key)
        if collector is None or collector._closed:
            collector = Collector(out, run, **kwargs)
        _SHARED[key] = _SHARED[given] = collector
        return collector


def _other_producers(connected: list, source: str) -> tuple:
    """The manifest's connected producers other than this client, split into
    named ones and unnamed connections (``conn-<n>``, no hello read yet).
    ``stdin`` is always the spawner, this client, before its hello is read."""
    others = [c for c in connected if c not in (source, "stdin")]
    unnamed = [c for c in others if c.startswith("conn-") and c[5:].isdigit()]
    return [c for c in others if c not in unnamed], unnamed


def _peer_pid(sock) -> Optional[int]:
    """The pid of the process at the other end of a Unix socket (Linux)."""
    try:
        import struct

        creds = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, struct.calcsize("3i"))
        return struct.unpack("3i", creds)[0]
    except (AttributeError, OSError):
        return None
