"""Why a Socket.IO connect to a hub failed, when python-socketio only says "Connection error".

python-socketio reports every failed WebSocket connect the same way: a hub that is down,
a hub that answered 503 because this address is over its connection cap, a TLS handshake
against a plain-HTTP hub, and a web server that is not a hub at all. One plain GET of the
hub's ``/healthz`` (docs/protocol.md) tells them apart, so the line the user reads names
the cause instead of asking whether the hub is running.
"""

from __future__ import annotations

import aiohttp

# what a refusal body may quote: the hub's sentences are one line well under this
QUOTE_CHARS = 300


async def why_connect_failed(url: str, limit_s: float) -> str | None:
    """One sentence on why ``url`` (``http[s]://host[:port]``) refused us, or None.

    ``limit_s`` bounds the whole GET, in seconds. None when nothing answers there
    (connection refused, no route, a timeout): the caller's "cannot reach the hub"
    sentence is then the right one. Never raises.
    """
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=limit_s)) as session,
            session.get(f"{url}/healthz", allow_redirects=False) as response,
        ):
            status = response.status
            body = (await response.text(errors="replace"))[:QUOTE_CHARS].strip()
            kind = response.content_type
    except aiohttp.ClientSSLError as exc:
        return (
            f"the TLS handshake with {url} failed ({exc.__class__.__name__}); "
            "a hub without TLS is reached with http://, not https://"
        )
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None
    if status == 503 and body.startswith("limit:"):
        return f"the hub at {url} refused the connection: {body.splitlines()[0]}"
    if status == 421 and "--allowed-host" in body:
        # the hub's Host guard: it answers to other names only (docs/security.md)
        return (
            f"the hub at {url} does not answer to that host name: {body.splitlines()[0]}; "
            "use a name it was started with --allowed-host for"
        )
    if status == 200 and kind == "application/json":
        return (
            f"the hub at {url} answers HTTP but its WebSocket connect failed "
            "(a proxy in between that does not pass WebSocket upgrades?)"
        )
    return f"{url} answered HTTP {status} to /healthz: it is not a p2pcall hub (check --server)"
