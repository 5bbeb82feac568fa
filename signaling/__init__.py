"""p2pcall signaling hub: holds a caller's offer and candidates until the answerer joins.

Names load on first use (PEP 562): the Python peer reads :mod:`signaling.config`
for its ICE-server flags without loading the server stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .lazy import lazy_exports

_EXPORTS = {
    "Candidate": "protocol",
    "Config": "config",
    "ConfigError": "config",
    "Description": "protocol",
    "ErrorCode": "protocol",
    "Event": "protocol",
    "HangupReason": "protocol",
    "Hub": "server",
    "Limits": "rooms",
    "Outcome": "rooms",
    "Rooms": "rooms",
    "Send": "rooms",
    "SignalingError": "protocol",
    "config_from_args": "config",
    "create_app": "server",
}

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


__getattr__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from .config import Config, ConfigError, config_from_args
    from .protocol import Candidate, Description, ErrorCode, Event, HangupReason, SignalingError
    from .rooms import Limits, Outcome, Rooms, Send
    from .server import Hub, create_app
