"""Every place the peer reaches into aiortc's internals, checked against its version.

aiortc 1.16 keeps some behaviour the peer must change behind private names: the video
jitter buffer (:mod:`peer.jitter`), the DTLS cipher list of a connection's certificate,
and the codec matching it applies to a remote description. All such names live here.
:func:`check` compares the installed aiortc with the series these hooks were written
for (``pyproject.toml`` pins it); on any other version the hooks are switched off and
the peer runs on aiortc's public API alone: stock jitter buffers, ECDSA-only DTLS
suites as a client, and codec matching by MIME type and clock rate.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Any

import aiortc
from aiortc import RTCPeerConnection, RTCRtpCodecParameters, RTCRtpReceiver

log = logging.getLogger(__name__)

__all__ = [
    "SERIES",
    "check",
    "hooks_enabled",
    "usable_codecs",
    "widen_dtls_ciphers",
]

SERIES = "1.16."

# private names, name-mangled by aiortc (see its rtcrtpreceiver.py, rtcpeerconnection.py)
RECEIVER_BUFFER = "_RTCRtpReceiver__jitter_buffer"
RECEIVER_STARTED = "_RTCRtpReceiver__started"
PC_CREATE_TRANSCEIVER = "_RTCPeerConnection__createTransceiver"
PC_CERTIFICATES = "_RTCPeerConnection__certificates"
CERT_SSL_CONTEXT = "_create_ssl_context"

# aiortc offers only ECDSA suites (rtcdtlstransport.py). When it answers it is the DTLS
# client, and a caller with an RSA certificate (GStreamer's webrtcbin, embedded stacks)
# has no suite in common with it. These are the ones WebRTC stacks use (RFC 8827
# section 6.5 asks for ECDHE with AES-GCM); an ECDSA certificate as server still
# selects only the ECDSA ones.
DTLS_CIPHERS = (
    b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:"
    b"ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:"
    b"ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:"
    b"ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA"
)

_checked: bool | None = None


def check(version: str | None = None) -> bool:
    """True when the installed aiortc (or ``version``) is the series the hooks know.

    Logs once, at the first call, when the hooks are off.
    """
    global _checked
    installed = aiortc.__version__ if version is None else version
    ok = installed.startswith(SERIES)
    if version is None:
        if _checked is None and not ok:
            log.warning(
                "aiortc %s is not the %sx series the peer was tested with: the jitter "
                "buffer, RSA DTLS and codec hooks are off (public API only)",
                installed,
                SERIES,
            )
        _checked = ok
    return ok


def hooks_enabled() -> bool:
    return check() if _checked is None else _checked


def widen_dtls_ciphers(pc: RTCPeerConnection) -> bool:
    """Let ``pc``'s DTLS accept ECDHE-RSA AES-GCM suites too; False when not hooked.

    Only this connection's certificates change; other connections keep aiortc's list.
    """
    if not hooks_enabled():
        return False
    certificates: Sequence[Any] | None = getattr(pc, PC_CERTIFICATES, None)
    if not certificates:
        log.warning("pc %#x: aiortc has no %s; DTLS suites unchanged", id(pc), PC_CERTIFICATES)
        return False
    for certificate in certificates:
        original = getattr(certificate, CERT_SSL_CONTEXT, None)
        if original is None:
            return False
        setattr(certificate, CERT_SSL_CONTEXT, functools.partial(_wider_context, original))
    return True


def _wider_context(original: Any, *args: Any, **kwargs: Any) -> Any:
    ctx = original(*args, **kwargs)
    ctx.set_cipher_list(DTLS_CIPHERS)
    return ctx


def usable_codecs(
    kind: str, offered: Sequence[RTCRtpCodecParameters]
) -> list[RTCRtpCodecParameters]:
    """The ``offered`` codecs this peer can send and receive, in offer order.

    With the hooks on this is aiortc's own matching (H.264 profile and packetization
    mode included), so it predicts exactly what ``setRemoteDescription`` accepts.
    """
    if hooks_enabled():
        from aiortc.codecs import CODECS
        from aiortc.rtcpeerconnection import find_common_codecs

        return list(find_common_codecs(CODECS[kind], list(offered)))
    capabilities = RTCRtpReceiver.getCapabilities(kind)
    local = capabilities.codecs if capabilities is not None else []
    return [
        c
        for c in offered
        if c.mimeType.lower() != f"{kind}/rtx"
        and any(_compatible(mine.mimeType, mine.clockRate, mine.parameters, c) for mine in local)
    ]


def _compatible(
    mime: str, rate: int, parameters: dict[str, Any], offered: RTCRtpCodecParameters
) -> bool:
    """MIME type and clock rate; for H.264 also profile_idc and packetization mode (RFC 6184)."""
    if mime.lower() != offered.mimeType.lower() or rate != offered.clockRate:
        return False
    if mime.lower() != "video/h264":
        return True

    def mode(p: dict[str, Any]) -> str:
        return str(p.get("packetization-mode", "0"))

    def profile_idc(p: dict[str, Any]) -> str:
        return str(p.get("profile-level-id", "42"))[:2].lower()

    theirs = offered.parameters
    return mode(parameters) == mode(theirs) and profile_idc(parameters) == profile_idc(theirs)
