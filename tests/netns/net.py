"""Hosts that cannot reach each other: network namespaces joined only through a server host.

Three namespaces per run, each with its own network stack, so nothing here touches the
machine's own interfaces, routes or addresses:

- ``<prefix>-s`` (server): the hub and coturn, on ``SERVICE`` (10.231.0.1, on its lo),
  with one veth to each peer host. IP forwarding is off (the default of a new namespace),
  so it never routes a packet from one peer host to the other.
- ``<prefix>-a`` / ``<prefix>-b`` (peer hosts): one veth each (10.231.1.2 / 10.231.2.2)
  and a route to ``SERVICE`` only. There is NO route between them: a packet from one to
  the other fails with "network unreachable" at the sender.

Names carry the creating pid, so a run cleans the namespaces of dead runs at start and
never those of a run still going. Needs root (``ip netns`` and veths need CAP_NET_ADMIN).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

PREFIX = "p2pc-"
SERVICE = "10.231.0.1"
HOST_A = "10.231.1.2"
HOST_B = "10.231.2.2"
_LINKS = {"a": ("10.231.1.1", HOST_A), "b": ("10.231.2.1", HOST_B)}
NAME = re.compile(rf"^{PREFIX}(\d+)-[sab]$")


def require_root_and_tools() -> None:
    """Fail (never skip) with how to run these tests."""
    if os.geteuid() != 0:
        pytest.fail(
            "network-namespace tests need root (ip netns, veth, iptables): run them as root, "
            "e.g. `sudo make test` or `sudo .venv/bin/python -m pytest tests/netns`",
            pytrace=False,
        )
    for tool, package in (("ip", "iproute2"), ("iptables", "iptables"), ("turnserver", "coturn")):
        if shutil.which(tool) is None:
            pytest.fail(
                f"{tool} is missing: apt-get install {package} (make test installs it)",
                pytrace=False,
            )


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True, timeout=30)


def in_ns(ns: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return ip("netns", "exec", ns, *argv)


def clean_stale() -> list[str]:
    """Delete ``p2pc-`` namespaces left by runs whose process is gone; return their names."""
    removed = []
    for line in ip("netns", "list").stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = NAME.match(name)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            ip("netns", "del", name, check=False)
            removed.append(name)
    return removed


@dataclass
class Topology:
    """The three namespaces of one run; :meth:`exec` prefixes a command to run in one."""

    prefix: str

    @property
    def server(self) -> str:
        return f"{self.prefix}-s"

    def host(self, side: str) -> str:
        return f"{self.prefix}-{side}"

    @property
    def namespaces(self) -> list[str]:
        return [self.server, self.host("a"), self.host("b")]

    def exec(self, ns: str, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", ns, *argv]

    def build(self) -> None:
        for ns in self.namespaces:
            ip("netns", "add", ns)
            in_ns(ns, "ip", "link", "set", "lo", "up")
        in_ns(self.server, "ip", "addr", "add", f"{SERVICE}/32", "dev", "lo")
        pid = self.prefix.removeprefix(PREFIX)
        for side, (gateway, address) in _LINKS.items():
            outer, inner = f"p2pc{pid}{side}s", f"p2pc{pid}{side}h"  # <= 15 chars
            ip("link", "add", outer, "netns", self.server, "type", "veth", "peer", "name", inner,
               "netns", self.host(side))  # fmt: skip
            in_ns(self.server, "ip", "addr", "add", f"{gateway}/24", "dev", outer)
            in_ns(self.server, "ip", "link", "set", outer, "up")
            in_ns(self.host(side), "ip", "addr", "add", f"{address}/24", "dev", inner)
            in_ns(self.host(side), "ip", "link", "set", inner, "up")
            in_ns(self.host(side), "ip", "route", "add", f"{SERVICE}/32", "via", gateway)

    def destroy(self) -> None:
        for ns in self.namespaces:
            ip("netns", "del", ns, check=False)

    def drop_udp_to(self, side: str, port: int) -> None:
        """A firewall on host ``side`` that drops every UDP datagram to ``SERVICE:port``."""
        in_ns(self.host(side), "iptables", "-A", "OUTPUT", "-p", "udp", "-d", SERVICE,
              "--dport", str(port), "-j", "DROP")  # fmt: skip

    def allow_udp_to(self, side: str, port: int) -> None:
        """Undo :meth:`drop_udp_to`."""
        in_ns(self.host(side), "iptables", "-D", "OUTPUT", "-p", "udp", "-d", SERVICE,
              "--dport", str(port), "-j", "DROP")  # fmt: skip

    def route_error(self, side: str, address: str) -> str | None:
        """Why host ``side`` cannot send to ``address`` (e.g. "Network is unreachable"), or None."""
        probe = (
            "import socket, sys\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "try:\n    s.connect((sys.argv[1], 9))\n"
            "except OSError as e:\n    print(e.strerror)"
        )
        out = in_ns(self.host(side), sys.executable, "-c", probe, address).stdout.strip()
        return out or None


def new_topology() -> Topology:
    clean_stale()
    topo = Topology(f"{PREFIX}{os.getpid()}")
    topo.destroy()  # a previous fixture of this same process that failed half-way
    topo.build()
    return topo
