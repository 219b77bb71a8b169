"""The client's connection to a run's sidecar: finding the binary, the
well-known socket, join-or-spawn, and the socket protocol of SPEC §6
(``hello`` and its one-line answer, wake bytes, ``bye`` and its answer).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import select
import shutil
import socket as _socket
import struct
import subprocess
import time
import zlib
from pathlib import Path
from typing import Optional

log = logging.getLogger("rlcollect")

HELLO_TIMEOUT = 10.0
_SOCKET_PATH_MAX = 100  # bytes; a Unix socket's sun_path holds 108 with its NUL


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


def socket_path(run_dir: Path) -> str:
    """The well-known socket of a run's sidecar (SPEC §7): ``RUN/collector.sock``,
    or, when that path is over 100 bytes (too long for a Unix socket),
    ``$TMPDIR/rlcollect-<crc32 of the absolute run path, 8 hex>.sock``. The
    crc32 (not a hash of Python's choosing) lets the Rust producer agree."""
    run_dir = Path(run_dir).resolve()
    path = str(run_dir / "collector.sock")
    if len(path.encode()) <= _SOCKET_PATH_MAX:
        return path
    name = "rlcollect-%08x.sock" % zlib.crc32(str(run_dir).encode())
    return os.path.join(os.environ.get("TMPDIR") or "/tmp", name)


@contextlib.contextmanager
def spawn_lock(run_dir: Path):
    """Serialises join-or-spawn between processes: exactly one spawns."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / ".spawn.lock", "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def connect(path: str) -> Optional[_socket.socket]:
    """A connection to the socket at ``path``, or None when nobody listens."""
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        s.connect(path)
        return s
    except OSError:
        s.close()
        return None


def spawn(sock_path: str, out: "str | Path", run: str, args: tuple) -> "Link":
    """Starts ``rlcollect run --listen`` for the run and returns the first
    connection that succeeds, kept as this client's own: with
    ``--exit-when-idle`` a probe that connected and closed could end the run.
    A sidecar that ends cleanly before anyone connected (it found only
    leftovers of dead producers to finish) is started once more."""
    cmd = [find_binary(), "run", "--out", str(out), "--run", run, "--listen", sock_path,
           "--exit-when-idle", "--wait-lock", "120", *args]
    for _ in range(3):
        link = _start(cmd, sock_path)
        if link is not None:
            return link
        log.warning("rlcollect: the sidecar ended before this client connected; starting it again")
    raise RuntimeError(f"rlcollect run ended three times before a client could connect: {' '.join(cmd)}")


def _start(cmd: list, sock_path: str) -> Optional["Link"]:
    """One sidecar process and our connection to it; None when it ended
    with code 0 before we connected."""
    # Its own session: a Ctrl-C meant for the strategy does not kill the
    # collector; it ends when its last producer leaves. No stdin: every
    # producer, this one included, talks over the socket.
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 150  # --wait-lock 120, plus its start
    while True:
        sock = connect(sock_path)
        if sock is not None:
            return Link(sock, proc)
        code = proc.poll()
        if code == 0:
            return None
        if code is not None:
            raise RuntimeError(f"rlcollect run exited with code {code} (see its messages above): {' '.join(cmd)}")
        if time.monotonic() > deadline:
            proc.kill()
            raise TimeoutError(f"rlcollect run did not open {sock_path} within 150 s")
        time.sleep(0.02)


def join_or_spawn(out: "str | Path", run: str, run_dir: Path, args: tuple) -> "Link":
    """The run's sidecar: joins the one listening on the well-known socket,
    or starts one. Under the run's spawn lock, so exactly one process spawns."""
    sock_path = socket_path(run_dir)
    with spawn_lock(run_dir):
        sock = connect(sock_path)
        if sock is not None:
            return Link(sock)
        return spawn(sock_path, out, run, args)


class Link:
    """One producer's connection to the sidecar, and the sidecar process when
    this client started it."""

    def __init__(self, sock: _socket.socket, proc: Optional[subprocess.Popen] = None) -> None:
        self.sock = sock
        self.proc = proc
        self.pid = proc.pid if proc is not None else _peer_pid(sock)
        self.dead = False  # the sidecar closed the connection or died
        self._inbuf = b""

    @classmethod
    def join(cls, path: str) -> "Link":
        """A connection to an already running sidecar (``socket=PATH``)."""
        sock = connect(path)
        if sock is None:
            raise ConnectionError(f"no rlcollect sidecar is listening on {path}")
        return cls(sock)

    # -- requests with a one-line answer --------------------------------------

    def request(self, record: dict, timeout: float) -> Optional[dict]:
        """Sends one control line and reads the one-line answer. None when it
        does not come within ``timeout`` (an old sidecar answers nothing) or
        the connection is gone."""
        deadline = time.monotonic() + timeout
        try:
            self.sock.settimeout(timeout)
            self.sock.sendall(json.dumps(record, separators=(",", ":")).encode() + b"\n")
            line = self._read_line(deadline)
        except (OSError, ValueError) as e:
            if not isinstance(e, _socket.timeout):
                self.dead = True
            return None
        if line is None:
            return None
        try:
            answer = json.loads(line)
        except ValueError:
            log.warning("rlcollect: the sidecar answered %r, not JSON", line[:200])
            return None
        return answer if isinstance(answer, dict) else None

    def _read_line(self, deadline: float) -> Optional[bytes]:
        while b"\n" not in self._inbuf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            chunk = self.sock.recv(4096)
            if not chunk:
                self.dead = True
                return None
            self._inbuf += chunk
        line, _, self._inbuf = self._inbuf.partition(b"\n")
        return line

    # -- the ring's side channel ----------------------------------------------

    def quiet(self) -> None:
        """Non-blocking from now on: a wake byte never waits."""
        self.sock.setblocking(False)

    def wake(self) -> None:
        """One wake byte (an empty line) for a sleeping reader. A full socket
        buffer already holds wake bytes (EAGAIN is fine); a broken connection
        means the sidecar died."""
        try:
            self.sock.send(b"\n", _socket.MSG_NOSIGNAL)
        except BlockingIOError:
            pass
        except OSError as e:
            self._lost(e)

    def alive(self) -> bool:
        """False once the sidecar closed the connection (EOF, reset, hang-up).
        It sends nothing unasked, so anything readable is its end."""
        if self.dead:
            return False
        try:
            ready = select.poll()
            ready.register(self.sock, select.POLLIN | select.POLLHUP | select.POLLERR)
            if ready.poll(0):
                if self.sock.recv(1, _socket.MSG_PEEK | _socket.MSG_DONTWAIT) == b"":
                    self._lost(EOFError("connection closed"))
        except BlockingIOError:
            pass
        except OSError as e:
            self._lost(e)
        return not self.dead

    def _lost(self, why: BaseException) -> None:
        if not self.dead:
            self.dead = True
            log.error("rlcollect: the sidecar (pid %s) is gone (%s); records stay in the ring while it has "
                      "room, then go to the spool file; the next `rlcollect run` or `recover` takes both",
                      self.pid, why)

    # -- lines (the buffered transport) ---------------------------------------

    def send_lines(self, data: bytes) -> None:
        """Writes NDJSON lines, blocking (the sidecar's backpressure). Raises
        OSError when the sidecar is gone."""
        self.sock.sendall(data)

    # -- the end ----------------------------------------------------------------

    def bye(self, timeout: float) -> Optional[dict]:
        """``bye`` and its answer ``{"bye":"ok","last":...}``, sent after the
        sidecar drained our ring; None without an answer."""
        if self.dead:
            return None
        return self.request({"stream": "control", "op": "bye"}, timeout)

    def wait_closed(self, deadline: float) -> bool:
        """Waits for the sidecar to close the connection: after a ``last``
        bye it does so only after its final flush. Then, if we started it,
        reaps it. True when the run ended within the deadline."""
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.sock.settimeout(left)
                if not self.sock.recv(4096):
                    break
        except _socket.timeout:
            return False
        except OSError:
            pass  # reset: it is gone as well
        if self.proc is not None:
            try:
                self.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                return False
        return True

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
        if self.proc is not None:
            self.proc.poll()  # reaped if it has ended

    def forget(self) -> None:
        """In a forked child: closes the inherited descriptor. The connection
        itself stays the parent's (close(2) of one of two descriptors sends
        nothing). The parent's sidecar process is not ours to wait for."""
        try:
            self.sock.close()
        except OSError:
            pass
        self.proc = None


def _peer_pid(sock) -> Optional[int]:
    """The pid of the process at the other end of a Unix socket (Linux)."""
    try:
        creds = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, struct.calcsize("3i"))
        return struct.unpack("3i", creds)[0]
    except (AttributeError, OSError):
        return None
