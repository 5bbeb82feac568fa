"""p2pcall Python peer (aiortc): signaling client, call, media sources and sinks."""

# OpenCV first: its Qt window (``--show``) hangs when PyAV's bundled libraries load first.
import cv2  # noqa: F401

from .call import Call, CallOptions, Phase, chat_message, parse_chat
from .config import PeerConfig, config_from_args
from .errors import (
    CallTimeout,
    ExitCode,
    HubUnreachable,
    MediaError,
    PeerError,
    RoomBusy,
    RoomFull,
    SignalingError,
    Unauthorized,
    UsageError,
)
from .media import CaptureSource, Sources, TestSource, ToneSource, open_sources
from .signaling import SignalingClient, Welcome
from .sinks import Display, LatestFrame, VideoSink
from .stats import CallStats
from .testsrc import Stamp, read_stamp

__all__ = [
    "Call",
    "CallOptions",
    "CallStats",
    "CallTimeout",
    "CaptureSource",
    "Display",
    "ExitCode",
    "HubUnreachable",
    "LatestFrame",
    "MediaError",
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
