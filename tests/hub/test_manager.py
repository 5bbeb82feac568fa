"""IndexedManager keeps python-socketio's room bookkeeping identical to the stock manager's."""

from __future__ import annotations

import socketio

from signaling.manager import IndexedManager


class _Eio:
    def __init__(self) -> None:
        self.n = 0

    def generate_id(self) -> str:
        self.n += 1
        return f"s{self.n}"


class _Server:
    packet_class = socketio.packet.Packet

    def __init__(self) -> None:
        self.eio = _Eio()


def _manager(cls: type[socketio.AsyncManager]) -> socketio.AsyncManager:
    m = cls()
    m.set_server(_Server())
    return m


def _state(m: socketio.AsyncManager) -> tuple[object, ...]:
    rooms = {ns: {r: dict(b) for r, b in rs.items()} for ns, rs in m.rooms.items()}
    return rooms, m.callbacks, m.pending_connect, m.pending_disconnect


async def _script(m: socketio.AsyncManager) -> list[tuple[object, ...]]:
    """Connect sockets on two namespaces, join named rooms, disconnect some."""
    states = []
    sids = [await m.connect(f"e{i}", "/") for i in range(6)]
    other = await m.connect("e0", "/chat")
    m.basic_enter_room(sids[0], "/", "lobby")
    m.basic_enter_room(sids[1], "/", "lobby")
    m.basic_enter_room(sids[1], "/", "side")
    m.callbacks[sids[1]] = {1: print}
    states.append(_state(m))
    m.pre_disconnect(sids[1], "/")
    m.basic_disconnect(sids[1], "/")
    states.append(_state(m))
    m.basic_leave_room(sids[0], "/", "lobby")
    m.basic_close_room("side", "/")
    m.basic_disconnect(sids[0], "/")
    m.basic_disconnect(other, "/chat")
    m.basic_disconnect("never-connected", "/")
    states.append(_state(m))
    for sid in sids[2:]:
        m.basic_disconnect(sid, "/")
    states.append(_state(m))
    return states


async def test_indexed_manager_matches_the_stock_manager() -> None:
    ours = await _script(_manager(IndexedManager))
    assert ours == await _script(_manager(socketio.AsyncManager))


async def test_disconnect_leaves_no_index_behind() -> None:
    m = _manager(IndexedManager)
    await _script(m)
    assert m.rooms == {}
    assert m._rooms_of == {}
