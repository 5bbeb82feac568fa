"""p2pcall signaling hub: holds a caller's offer and candidates until the answerer joins."""

from .config import Config, ConfigError, config_from_args
from .protocol import Candidate, Description, ErrorCode, Event, HangupReason, SignalingError
from .rooms import Limits, Outcome, Rooms, Send
from .server import Hub, create_app

__all__ = [
    "Candidate",
    "Config",
    "ConfigError",
    "Description",
    "ErrorCode",
    "Event",
    "HangupReason",
    "Hub",
    "Limits",
    "Outcome",
    "Rooms",
    "Send",
    "SignalingError",
    "config_from_args",
    "create_app",
]
