"""Whether ``DISPLAY`` names an X server that answers, before a call starts.

OpenCV's Qt aborts the whole process (SIGABRT) when its X connection fails, and it
first tries once the call is up and the window opens. Connecting to the display's
socket, as Xlib does, says so up front instead.
"""

from __future__ import annotations

import socket

X_TCP_BASE = 6000  # display N listens on TCP port 6000 + N (X11R7 Xserver(1))
X_SOCKET_DIR = "/tmp/.X11-unix"  # display N's local socket is X_SOCKET_DIR/XN


def x_server_fault(display: str, timeout_s: float = 1.0) -> str | None:
    """None when an X server accepts a connection for ``display``; else why not.

    ``display`` is ``[host]:number[.screen]``. With no host (or ``unix``) the local
    socket is tried, Linux's abstract one first, as Xlib does; with a host, TCP port
    6000 + number, within ``timeout_s`` seconds. A host that is a socket path (macOS's
    launchd) is not checked. The reason names what was tried and how to get a server.
    """
    host, colon, rest = display.rpartition(":")
    number = rest.split(".", 1)[0]
    if not colon or not number.isdigit():
        return f"DISPLAY={display!r} is not [host]:number[.screen] such as :0"
    if host.startswith("/"):
        return None
    if host in ("", "unix"):
        where = f"{X_SOCKET_DIR}/X{number}"
        for address in ("\0" + where, where):  # abstract first, then the file
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout_s)
                try:
                    sock.connect(address)
                except OSError as exc:
                    reason = exc.strerror or type(exc).__name__
                else:
                    return None
    else:
        where = f"{host} port {X_TCP_BASE + int(number)}"
        try:
            socket.create_connection((host, X_TCP_BASE + int(number)), timeout=timeout_s).close()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
        else:
            return None
    fix = f"start one (for example: Xvfb :{number} &) or run without --show"
    return f"no X server answers on DISPLAY={display!r} ({where}: {reason.lower()}); {fix}"
