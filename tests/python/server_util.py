"""Starts ``picolm-server`` on a free loopback port for the tests and talks to it without extra packages."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def server_binary() -> Path:
    """$PICOLM_SERVER, else the release build (scripts/test-python.sh builds it)."""
    if os.environ.get("PICOLM_SERVER"):
        return Path(os.environ["PICOLM_SERVER"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return target / "release" / "picolm-server"


class Server:
    """A running server process; ``--port 0`` lets the OS choose a free port, read back from its first line."""

    def __init__(self, model: Path, *args: str, ctx: int = 2048, startup_timeout: float = 120.0):
        binary = server_binary()
        if not binary.is_file():
            raise FileNotFoundError(f"{binary} not found: run `cargo build --release -p picolm-server`")
        cmd = [str(binary), str(model), "--host", "127.0.0.1", "--port", "0", "-c", str(ctx), "-j", "2", *args]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + startup_timeout
        self.log = []
        while True:
            line = self.proc.stderr.readline()
            if not line:
                raise RuntimeError(f"picolm-server exited during startup ({self.proc.wait()}): {''.join(self.log)}")
            self.log.append(line)
            if "serving" in line and "http://" in line:
                url = line.split("http://", 1)[1].split()[0]
                self.host, port = url.split("/", 1)[0].rsplit(":", 1)
                self.port = int(port)
                break
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"picolm-server did not start: {''.join(self.log)}")
        self.base_url = f"http://{self.host}:{self.port}/v1"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stderr.close()

    def rss_kib(self) -> int:
        """Resident set of the server process (VmRSS, KiB)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def request(self, method: str, path: str, body=None, headers=None, timeout: float = 120.0):
        """(status, parsed JSON or raw text) of one request; ``body`` may be bytes or a JSON-able value."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
            h = {"Content-Type": "application/json", **(headers or {})}
            conn.request(method, path, body=data, headers=h)
            resp = conn.getresponse()
            raw = resp.read()
            try:
                return resp.status, json.loads(raw)
            except ValueError:
                return resp.status, raw.decode(errors="replace")
        finally:
            conn.close()

    def health(self) -> dict:
        status, body = self.request("GET", "/health", timeout=10)
        assert status == 200, body
        return body

    def wait_idle(self, timeout: float) -> float:
        """Seconds until no request is running or queued; fails after ``timeout``."""
        t0 = time.monotonic()
        while self.health()["busy"] != 0:
            if time.monotonic() - t0 > timeout:
                raise AssertionError(f"the server is still busy after {timeout} s")
            time.sleep(0.02)
        return time.monotonic() - t0


def sse_events(resp) -> list:
    """The ``data:`` payloads of a server-sent-events response read to the end."""
    out = []
    for raw in resp.read().decode().split("\n"):
        if raw.startswith("data: "):
            out.append(raw[len("data: "):])
    return out
