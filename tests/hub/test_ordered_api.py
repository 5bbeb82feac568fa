"""The public python-socketio calls the lean server bypasses fail loudly or keep its rules."""

from __future__ import annotations

import pytest

from tests.conftest import RunningHub

from .client import offer, party


async def test_a_handler_for_an_event_the_hub_dispatches_itself_is_refused(
    hub: RunningHub,
) -> None:
    sio = hub.hub.sio
    with pytest.raises(TypeError, match="would never be called"):
        sio.on("offer", lambda sid, data: None)
    with pytest.raises(TypeError, match="would never be called"):
        sio.event(lambda sid, data: None)  # registers a handler named after the function
    with pytest.raises(TypeError, match="would never be called"):
        sio.on("connect", lambda sid, environ: True, namespace="/other")


async def test_emit_to_one_sid_goes_out_in_order_with_relays(hub: RunningHub) -> None:
    caller, answerer = await party(hub.url), await party(hub.url)
    await caller.call("offer", offer("api"))
    await answerer.call("join", {"room": "api"})
    sid = next(iter(hub.hub.sessions._by_socket))  # any connected socket
    target = caller if sid == caller.sio.get_sid() else answerer
    await hub.hub.sio.emit("notice", {"n": 1}, to=sid)
    await hub.hub.sio.emit("notice", {"n": 2}, to=sid)
    assert await target.next("notice") == {"n": 1}
    assert await target.next("notice") == {"n": 2}
    await hub.hub.sio.emit("notice", {"n": 3}, to="no-such-sid")  # skipped, as stock does
    for bad in ({"to": None}, {"to": sid, "callback": print}, {"to": sid, "namespace": "/x"}):
        with pytest.raises(TypeError, match="one connected sid"):
            await hub.hub.sio.emit("notice", {}, **bad)
    await caller.close()
    await answerer.close()
