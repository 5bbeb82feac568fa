"""What the answerer can take from an offer: which m-sections, which codecs first.

Pure decisions over a split offer (:mod:`peer.sdp`) and aiortc's parse of it; no I/O.
An m-section with no codec this peer implements, of a kind it does not handle, or
already rejected by the offerer (port 0) is rejected in the answer; the rest of the
call goes on (RFC 3264 section 6: an answerer rejects a stream by port 0). The
answerer's ``--codec`` goes first when the offer has it: the answer lists codecs in
the order the offer gives aiortc, and both sides send with the answer's first codec
(RFC 3264 section 6.1).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from aiortc import RTCRtpCodecParameters, RTCRtpReceiver
from aiortc.sdp import MediaDescription, SessionDescription

from . import aiortc_seam, sdp
from .errors import NegotiationFailed

log = logging.getLogger(__name__)

MEDIA_KINDS = ("audio", "video")
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")


@dataclass
class Rejection:
    section: sdp.Section
    reason: str


@dataclass
class AnswerPlan:
    """The offer's m-sections split into those aiortc answers and those rejected."""

    offer: sdp.Description
    kept: list[sdp.Section] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    codec_missing: list[str] = field(default_factory=list)  # --codec wanted, not offered

    @property
    def aiortc_offer(self) -> str:
        """The offer aiortc is given: only the kept m-sections, no candidates."""
        return sdp.join(self.offer, self.kept)

    def kinds(self) -> set[str]:
        return {s.kind for s in self.kept}

    def receives(self, kind: str) -> bool:
        """Whether the offerer takes ``kind`` from us (a kept m-section not sendonly)."""
        return any(s.kind == kind and direction(s) in ("sendrecv", "recvonly") for s in self.kept)

    def inactive(self, kind: str) -> bool:
        """Whether every kept m-section of ``kind`` is ``a=inactive``."""
        sections = [s for s in self.kept if s.kind == kind]
        return bool(sections) and all(direction(s) == "inactive" for s in sections)


def direction(section: sdp.Section) -> str:
    for line in section.lines:
        if line[2:] in DIRECTIONS:
            return line[2:]
    return "sendrecv"


def codec_name(codec: RTCRtpCodecParameters) -> str:
    """``H264 (profile-level-id=4d001f)``, ``opus/48000``: how a log line names a codec."""
    name = codec.mimeType.split("/", 1)[-1]
    profile = codec.parameters.get("profile-level-id")
    if profile is not None:
        return f"{name} (profile-level-id={profile})"
    return f"{name}/{codec.clockRate}" if codec.mimeType.startswith("audio/") else name


def supported(kind: str) -> str:
    """This peer's codecs of ``kind``, named as :func:`codec_name` does."""
    capabilities = RTCRtpReceiver.getCapabilities(kind)
    names = [
        codec_name(
            RTCRtpCodecParameters(
                mimeType=c.mimeType,
                clockRate=c.clockRate,
                payloadType=0,
                parameters=dict(c.parameters),
            )
        )
        for c in (capabilities.codecs if capabilities is not None else [])
        if not c.mimeType.lower().endswith("/rtx")
    ]
    return ", ".join(dict.fromkeys(names))


def plan_answer(offer: sdp.Description, room: str, codec: str | None = None) -> AnswerPlan:
    """Decide, per m-section, what to answer; log one line per rejected m-section.

    Raises :class:`NegotiationFailed` when the offer cannot be read or nothing in it
    can be answered.
    """
    try:
        parsed = SessionDescription.parse(sdp.join(offer, offer.sections))
    except Exception as exc:  # aiortc's parser raises whatever the bad line causes
        raise NegotiationFailed(
            f"the offer in room {room!r} could not be read: {unreadable(offer, exc)}"
        ) from None
    if len(parsed.media) != len(offer.sections):
        raise NegotiationFailed(f"the offer in room {room!r} has m-lines aiortc cannot read")
    plan = AnswerPlan(offer)
    for section, media in zip(offer.sections, parsed.media, strict=True):
        reason = _rejection(section, media)
        if reason is not None:
            plan.rejected.append(Rejection(section, reason))
            log.warning("room=%s %s rejected: %s", room, section.describe(), reason)
            continue
        missing = _missing_transport(offer, section, media)
        if missing is not None:
            raise NegotiationFailed(
                f"the offer in room {room!r} cannot be answered: {section.describe()} "
                f"has no {missing}"
            )
        if codec is not None and section.kind == "video":
            if not _prefer(section, media.rtp.codecs, codec) and codec not in plan.codec_missing:
                plan.codec_missing.append(codec)
                log.warning(
                    "room=%s --codec %s: %s offers no %s this peer can use; answering "
                    "with the offer's order",
                    room,
                    codec,
                    section.describe(),
                    codec.upper(),
                )
        plan.kept.append(section)
    if not plan.kept:
        raise NegotiationFailed(
            f"nothing in the offer in room {room!r} can be answered: "
            + (
                "; ".join(f"{r.section.describe()}: {r.reason}" for r in plan.rejected)
                or "it has no m-section"
            )
        )
    return plan


def unreadable(offer: sdp.Description, exc: Exception) -> str:
    """Words for a parse failure; aiortc's parser often raises with no message."""
    if not offer.sections:
        return "it has no m-section (is it SDP at all?)"
    for s in offer.sections:
        if s.port != 0 and not s.formats:
            return f"{s.describe()} lists no payload types in its m-line"
    return str(exc) or f"{type(exc).__name__} in aiortc's SDP parser"


def _missing_transport(
    offer: sdp.Description, section: sdp.Section, media: MediaDescription
) -> str | None:
    """What a kept m-section lacks for ICE and DTLS, or ``None``."""
    if media.ice is None or not media.ice.usernameFragment or not media.ice.password:
        return "a=ice-ufrag / a=ice-pwd (ICE credentials)"
    if media.dtls is None or not media.dtls.fingerprints:
        lines = [*offer.session, *section.lines]
        if not any(ln.startswith("a=fingerprint:") for ln in lines):
            return "a=fingerprint (the DTLS certificate fingerprint media is secured with)"
        return "a=setup (the DTLS role)"
    return None


def _rejection(section: sdp.Section, media: MediaDescription) -> str | None:
    if section.port == 0:
        return "the offer itself rejects it (port 0)"
    kind = section.kind
    if kind == "application":
        profile = section.lines[0].split()[2] if len(section.lines[0].split()) > 2 else ""
        return None if "SCTP" in profile else f"application m-section over {profile!r}"
    if kind not in MEDIA_KINDS:
        return f"media kind {kind!r} is not handled (audio, video and data channels are)"
    offered: list[RTCRtpCodecParameters] = list(media.rtp.codecs)
    if not aiortc_seam.usable_codecs(kind, offered):
        names = [codec_name(c) for c in offered if not c.mimeType.lower().endswith("/rtx")]
        names = list(dict.fromkeys(names))  # the same codec in several packetization modes
        return (
            f"no {kind} codec in common: offered {', '.join(names) or 'none'}; "
            f"this peer supports {supported(kind)}"
        )
    return None


def _prefer(section: sdp.Section, offered: list[RTCRtpCodecParameters], codec: str) -> bool:
    """Put ``codec`` first in ``section``; False when the offer has none of it."""
    usable = aiortc_seam.usable_codecs("video", offered)
    wanted = f"video/{codec}".lower()
    first = [str(c.payloadType) for c in usable if c.mimeType.lower() == wanted]
    if not first:
        return False
    rtx = [
        str(c.payloadType)
        for c in offered
        if c.mimeType.lower() == "video/rtx" and str(c.parameters.get("apt")) in first
    ]
    sdp.prefer_payloads(section, first + rtx)
    return True
