"""p2pcall Python peer (aiortc): signaling client, call, media sources and sinks.

Names load on first use (PEP 562), so ``python -m peer --help`` and library users
who need only part of the API do not pay for aiortc, PyAV and OpenCV up front.
To show video with :class:`Display`, import :mod:`peer.display` before aiortc.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from signaling.lazy import lazy_exports

_EXPORTS = {
    "Call": "call",
    "CallOptions": "call",
    "CallStateError": "errors",
    "CallStats": "stats",
    "CallTimeout": "errors",
    "CaptureSource": "media",
    "Display": "display",
    "DtlsFailed": "errors",
    "ExitCode": "errors",
    "HubUnreachable": "errors",
    "IceFailed": "errors",
    "LatestFrame": "sinks",
    "MediaError": "errors",
    "NegotiationFailed": "errors",
    "PeerConfig": "config",
    "PeerError": "errors",
    "Phase": "call",
    "RoomBusy": "errors",
    "RoomFull": "errors",
    "SignalingClient": "signaling",
    "SignalingError": "errors",
    "Sources": "media",
    "Stamp": "testsrc",
    "TestSource": "media",
    "ToneSource": "media",
    "Unauthorized": "errors",
    "UsageError": "errors",
    "VideoSink": "sinks",
    "Welcome": "signaling",
    "chat_message": "call",
    "config_from_args": "config",
    "open_sources": "media",
    "parse_chat": "call",
    "read_stamp": "testsrc",
}

__all__ = [
    "Call",
    "CallOptions",
    "CallStateError",
    "CallStats",
    "CallTimeout",
    "CaptureSource",
    "Display",
    "DtlsFailed",
    "ExitCode",
    "HubUnreachable",
    "IceFailed",
    "LatestFrame",
    "MediaError",
    "NegotiationFailed",
    "PeerConfig",
    "PeerError",
    "Phase",
    "RoomBusy",
    "RoomFull",
    "SignalingClient",
    "SignalingError",
    "Sources",
    "Stamp",
    "TestSource",
    "ToneSource",
    "Unauthorized",
    "UsageError",
    "VideoSink",
    "Welcome",
    "chat_message",
    "config_from_args",
    "open_sources",
    "parse_chat",
    "read_stamp",
]


__getattr__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from .call import Call, CallOptions, Phase, chat_message, parse_chat
    from .config import PeerConfig, config_from_args
    from .display import Display
    from .errors import (
        CallStateError,
        CallTimeout,
        DtlsFailed,
        ExitCode,
        HubUnreachable,
        IceFailed,
        MediaError,
        NegotiationFailed,
        PeerError,
        RoomBusy,
        RoomFull,
        SignalingError,
        Unauthorized,
        UsageError,
    )
    from .media import CaptureSource, Sources, TestSource, ToneSource, open_sources
    from .signaling import SignalingClient, Welcome
    from .sinks import LatestFrame, VideoSink
    from .stats import CallStats
    from .testsrc import Stamp, read_stamp
