"""The two servers under test, each a child process pinned to one CPU.

Our hub runs as ``python -m signaling --port 0 --log-level warning``; the
PeerJS server (npm package ``peer``) runs through its library entry point so
that, like our hub, it logs nothing per connection. ``peer`` is installed into
``bench/peerjs/`` (git-ignored) the first time it is needed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
PEERJS_DIR = ROOT / "bench" / "peerjs"
PEERJS_VERSION = "1.0.2"
PEERJS_KEY = "peerjs"
STARTUP_SECONDS = 30.0

# Started with `node --input-type=module -e`, cwd bench/peerjs/ so `peer` resolves.
PEERJS_SCRIPT = """
import { PeerServer } from "peer";
PeerServer(
  { port: 0, host: "127.0.0.1", path: "/", key: "%s", concurrent_limit: 1000000,
    alive_timeout: 600000, expire_timeout: 60000 },
  (srv) => console.log("peerjs listening on port " + srv.address().port),
);
"""


class BenchSetupError(RuntimeError):
    """A tool the benchmark needs is missing or a server did not start."""


@dataclass
class Server:
    """A running server: its process, its base URL and psutil handles for CPU/RSS.

    ``helpers`` are processes it needs (the hub's redis-server): their CPU and RSS
    count as the server's.
    """

    name: str
    process: subprocess.Popen[str]
    url: str
    helpers: list[subprocess.Popen[str]] = field(default_factory=list)
    # where answerers connect, when not to ``url`` (a second hub of the same group)
    answer_url: str | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def stats(self) -> list[psutil.Process]:
        return [psutil.Process(p.pid) for p in (self.process, *self.helpers)]

    def stop(self) -> None:
        for process in (self.process, *self.helpers):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)


def pin(cpu: int | None) -> None:
    """Pin the calling process (and so its children) to ``cpu``."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def _spawn(name: str, argv: list[str], cwd: Path, cpu: int | None, pattern: str) -> Server:
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=(lambda: pin(cpu)) if cpu is not None else None,
    )
    assert proc.stdout is not None
    seen: list[str] = []
    timer = threading.Timer(STARTUP_SECONDS, proc.kill)
    timer.start()
    try:
        for line in proc.stdout:
            seen.append(line)
            m = re.search(pattern, line)
            if m:
                # keep draining its output so a full pipe never blocks it
                threading.Thread(target=proc.stdout.read, daemon=True).start()
                return Server(name, proc, m.group(1))
    finally:
        timer.cancel()
    proc.wait(5)
    raise BenchSetupError(
        f"{name} exited with {proc.returncode} before listening; output:\n" + "".join(seen[-20:])
    )


# Every benchmark client comes from 127.0.0.1, where real traffic comes from many
# addresses: the per-address caps (docs/security.md) are off, the hub-wide ones stay.
LOOPBACK_LOAD = ("--max-connections-per-address", "0", "--max-held-bytes-per-address", "0")


def start_hub(cpu: int | None, *extra: str) -> Server:
    """At ``--log-level warning`` the hub does not log its URL: read its listening port."""
    argv = [
        sys.executable,
        "-m",
        "signaling",
        "--port",
        "0",
        "--log-level",
        "warning",
        *LOOPBACK_LOAD,
        *extra,
    ]
    proc = subprocess.Popen(
        argv,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=(lambda: pin(cpu)) if cpu is not None else None,
    )
    assert proc.stderr is not None
    threading.Thread(target=proc.stderr.read, daemon=True).start()
    handle = psutil.Process(proc.pid)
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline and proc.poll() is None:
        ports = [c.laddr.port for c in handle.net_connections("tcp") if c.status == "LISTEN"]
        if ports:
            return Server("hub", proc, f"http://127.0.0.1:{ports[0]}")
        time.sleep(0.05)
    proc.kill()
    proc.wait(5)
    raise BenchSetupError(f"the hub did not listen within {STARTUP_SECONDS:.0f} s: {argv}")


def start_hub_redis(cpu: int | None, *extra: str, second_cpu: int | None = None) -> Server:
    """The hub with ``--redis`` on its own redis-server (Unix socket, no persistence),
    both pinned to ``cpu``: what the shared store costs, Redis's work counted.

    With ``second_cpu`` a second hub of the same group runs there, and answerers
    connect to it (``answer_url``): every call crosses hubs, all three processes counted.
    """
    exe = shutil.which("redis-server")
    if exe is None:
        raise BenchSetupError("redis-server is missing: apt-get install redis-server")
    folder = Path(tempfile.mkdtemp(prefix="bench-redis-"))
    sock = folder / "redis.sock"
    redis = _spawn(
        "redis-server",
        [exe, "--port", "0", "--unixsocket", str(sock), "--dir", str(folder), "--save", "",
         "--appendonly", "no"],
        folder,
        cpu,
        r"(ready to accept connections)",
    )  # fmt: skip
    started = [redis]
    try:
        hub = start_hub(cpu, "--redis", f"unix://{sock}", *extra)
        started.append(hub)
        if second_cpu is not None:
            other = start_hub(second_cpu, "--redis", f"unix://{sock}", *extra)
            hub.helpers.append(other.process)
            hub.answer_url = other.url
    except BaseException:
        for server in started:
            server.stop()
        raise
    hub.helpers.append(redis.process)
    return hub


def ensure_peerjs() -> Path:
    """Install ``peer@PEERJS_VERSION`` into bench/peerjs/ unless it is there."""
    package = PEERJS_DIR / "node_modules" / "peer" / "package.json"
    if package.is_file() and f'"version": "{PEERJS_VERSION}"' in package.read_text():
        return PEERJS_DIR
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise BenchSetupError(
            "the PeerJS comparison needs Node.js and npm: apt-get install nodejs npm"
        )
    PEERJS_DIR.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [npm, "install", "--prefix", str(PEERJS_DIR), "--no-audit", "--no-fund",
         "--loglevel=error", f"peer@{PEERJS_VERSION}"],
        capture_output=True,
        text=True,
    )  # fmt: skip
    if result.returncode != 0:
        raise BenchSetupError(f"npm install peer@{PEERJS_VERSION} failed:\n{result.stderr}")
    return PEERJS_DIR


def start_peerjs(cpu: int | None) -> Server:
    folder = ensure_peerjs()
    node = shutil.which("node") or "node"
    argv = [node, "--input-type=module", "-e", PEERJS_SCRIPT % PEERJS_KEY]
    server = _spawn("peerjs", argv, folder, cpu, r"peerjs listening on port (\d+)")
    server.url = f"http://127.0.0.1:{server.url}"
    return server
