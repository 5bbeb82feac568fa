"""Exceptions of the Python peer: one root, one subclass per way a call can fail.

Each class carries the process exit code the CLI uses for it, so the mapping from
failure to exit status lives next to the failure and nowhere else.
"""

from __future__ import annotations

from enum import IntEnum

from signaling.protocol import ErrorCode


class ExitCode(IntEnum):
    """Exit status of ``p2pcall-peer``."""

    OK = 0
    USAGE = 2
    SIGNALING = 3
    MEDIA = 4


class PeerError(Exception):
    """Root of every error the peer raises on purpose."""

    exit_code: ExitCode = ExitCode.MEDIA


class UsageError(PeerError, ValueError):
    """A setting has a value the peer cannot use; the message names the flag."""

    exit_code = ExitCode.USAGE


class SignalingError(PeerError):
    """The hub refused a request or cannot be reached; ``code`` is the wire error code."""

    exit_code = ExitCode.SIGNALING

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class HubUnreachable(SignalingError):
    """No Socket.IO connection could be made to the hub (down, wrong URL, timeout)."""

    def __init__(self, message: str) -> None:
        super().__init__("unreachable", message)


class SessionLost(SignalingError):
    """The hub no longer knows this client's session (restart, grace over): its rooms are gone."""

    def __init__(self, message: str, reason: str = "unknown") -> None:
        super().__init__("session_lost", message)
        self.reason = reason


class Unauthorized(SignalingError):
    """The hub refused the connect: wrong or missing access token."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.UNAUTHORIZED, message)


class RoomBusy(SignalingError):
    """``offer`` into a room that already has another caller."""


class RoomFull(SignalingError):
    """``join`` into a room that already has an answerer."""


class MediaError(PeerError):
    """A media source, sink or the ICE/DTLS connection failed."""

    exit_code = ExitCode.MEDIA


class CallTimeout(MediaError):
    """The call did not connect within ``--timeout`` seconds."""


class IceFailed(MediaError):
    """ICE found no candidate pair that works between the two peers."""


class DtlsFailed(MediaError):
    """ICE connected but the DTLS handshake (certificates, cipher suites) failed."""


class NegotiationFailed(MediaError):
    """A description from the other side could not be applied or answered."""


class CallStateError(PeerError):
    """A call method was used in a phase that does not allow it; names the phase."""


_BY_CODE: dict[str, type[SignalingError]] = {
    ErrorCode.ROOM_BUSY: RoomBusy,
    ErrorCode.ROOM_FULL: RoomFull,
}


def signaling_error(code: str, message: str) -> SignalingError:
    """The most specific exception for an error ack's ``code``."""
    if code == ErrorCode.UNAUTHORIZED:
        return Unauthorized(message)
    return _BY_CODE.get(code, SignalingError)(code, message)
