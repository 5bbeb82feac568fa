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

    @property
    def aiortc_offer(self) -> str:
        """The offer aiortc is given: only the kept m-sections, no candidates."""
        return sdp.join(self.offer, self.kept)

    def kinds(self) -> set[str]:
        return {s.kind for s in self.kept}

    def receives(self, kind: str) -> bool:
        """Whether the offerer takes ``kind`` from us (a kept m-section not sendonly)."""
        return any(s.kind == kind and direction(s) in ("sendrecv", "recvonly") for s in self.kept)


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
    return ", ".join(names)


def plan_answer(offer: sdp.Description, room: str, codec: str | None = None) -> AnswerPlan:
    """Decide, per m-section, what to answer; log one line per rejected m-section.

    Raises :class:`NegotiationFailed` when the offer cannot be read or nothing in it
    can be answered.
    """
    try:
        parsed = SessionDescription.parse(sdp.join(offer, offer.sections))
    except Exception as exc:  # aiortc's parser raises whatever the bad line causes
        raise NegotiationFailed(f"the offer in room {room!r} could not be read: {exc}") from None
    if len(parsed.media) != len(offer.sections):
        raise NegotiationFailed(f"the offer in room {room!r} has m-lines aiortc cannot read")
    plan = AnswerPlan(offer)
    for section, media in zip(offer.sections, parsed.media, strict=True):
        reason = _rejection(section, media)
        if reason is not None:
            plan.rejected.append(Rejection(section, reason))
            log.warning("room=%s %s rejected: %s", room, section.describe(), reason)
            continue
        if codec is not None and section.kind == "video":
            _prefer(section, media.rtp.codecs, codec)
        plan.kept.append(section)
    if not plan.kept:
        raise NegotiationFailed(
            f"nothing in the offer in room {room!r} can be answered: "
            + "; ".join(f"{r.section.describe()}: {r.reason}" for r in plan.rejected)
        )
    return plan


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
        return (
            f"no {kind} codec in common: offered {', '.join(names) or 'none'}; "
            f"this peer supports {supported(kind)}"
        )
    return None


def _prefer(section: sdp.Section, offered: list[RTCRtpCodecParameters], codec: str) -> None:
    usable = aiortc_seam.usable_codecs("video", offered)
    wanted = f"video/{codec}".lower()
    first = [str(c.payloadType) for c in usable if c.mimeType.lower() == wanted]
    if not first:
        return
    rtx = [
        str(c.payloadType)
        for c in offered
        if c.mimeType.lower() == "video/rtx" and str(c.parameters.get("apt")) in first
    ]
    sdp.prefer_payloads(section, first + rtx)
