"""python-engineio's server, tuned for our WebSocket transport (``fastws``).

Pings run on timers instead of tasks, and a socket that Engine.IO closes on its
own (a client that stopped answering pings) wakes its WebSocket writer, so the
connection is closed too.

Stock python-engineio schedules each socket's next ping as a background task
that sleeps ``ping_interval`` (25 s) and then checks whether the socket still
exists. A socket that closes meanwhile leaves its task asleep until then: under
call load (two short-lived sockets per call) a hub at 500 setups/s carried
~25,000 such tasks, each a coroutine, a task and a sleep future kept in memory
and in the event loop's timer heap. Here the same ping is a plain
``loop.call_later`` handle, cancelled when our WebSocket transport ends the
socket; one that fires after a close does nothing, as the stock task does.

When the service task finds a client that stopped answering pings, it closes
the Engine.IO socket, but the CLOSE packet it means to send is dropped by that
same ping check, and our writer waits on the send queue without a timer: the
disconnect event therefore puts the writer's stop mark on the queue.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import engineio
from engineio import packet
from engineio.async_socket import AsyncSocket

log = logging.getLogger(__name__)
PING_TIMER = "_ping_timer"  # attribute on the socket holding its TimerHandle
LEAN_WRITER = "_lean_writer"  # set on sockets whose writer is fastws's


class LeanEngineServer(engineio.AsyncServer):
    """``engineio.AsyncServer`` with timer pings and a writer wake-up on disconnect."""

    async def _trigger_event(self, event: str, *args: Any, **kwargs: Any) -> Any:
        # Only on a ping timeout: other closes queue a CLOSE packet, which the
        # writer sends before it stops, and may wait for the queue to drain.
        if event == "disconnect" and args[1:2] == (self.reason.PING_TIMEOUT,):
            socket = self.sockets.get(args[0])
            if socket is not None and getattr(socket, LEAN_WRITER, False):
                socket.queue.put_nowait(None)  # the writer stops and closes the WebSocket
        return await super()._trigger_event(event, *args, **kwargs)

    def start_background_task(self, target: Any, *args: Any, **kwargs: Any) -> Any:
        socket = getattr(target, "__self__", None)
        if getattr(target, "__func__", None) is AsyncSocket._send_ping and not args:
            handle = asyncio.get_running_loop().call_later(self.ping_interval, _ping_due, socket)
            setattr(socket, PING_TIMER, handle)
            return handle
        return super().start_background_task(target, *args, **kwargs)


def _ping_due(socket: Any) -> None:
    """What stock ``AsyncSocket._send_ping`` does after its sleep, without awaiting."""
    setattr(socket, PING_TIMER, None)
    if not socket.closing and not socket.closed:
        socket.last_ping = time.time()
        socket.queue.put_nowait(packet.Packet(packet.PING))


def cancel_ping(socket: Any) -> None:
    """Drop a closed socket's pending ping timer, if it has one."""
    handle = getattr(socket, PING_TIMER, None)
    if handle is not None:
        handle.cancel()
        setattr(socket, PING_TIMER, None)
