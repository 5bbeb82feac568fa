"""The frames fastws writes itself are the frames aiohttp would have written."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.http_websocket import WebSocketWriter, WSMsgType

from signaling.fastws import server_frame


class _Capture(asyncio.Transport):
    """A transport that keeps what is written: the writer's whole output, byte for byte."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return False


class _Protocol:
    _paused = False


# each boundary of RFC 6455's 7-, 16- and 64-bit payload lengths, and either side of it
SIZES = [0, 1, 125, 126, 127, 65535, 65536, 70000]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
async def test_server_frame_matches_aiohttp(size: int, binary: bool) -> None:
    payload = bytes((i * 7) % 251 for i in range(size)) if binary else "é" * (size // 2)
    encoded = payload if isinstance(payload, bytes) else payload.encode()
    transport = _Capture()
    writer = WebSocketWriter(_Protocol(), transport, use_mask=False)  # type: ignore[arg-type]
    opcode = WSMsgType.BINARY if binary else WSMsgType.TEXT
    await writer.send_frame(encoded, opcode)
    assert server_frame(payload) == bytes(transport.written)
