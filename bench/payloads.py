"""The call pattern's messages, stamped so the receiver can check them.

Both servers relay the description and candidate strings verbatim, so the
sequence number and the send time ride inside them: a last SDP line
``a=x-bench:SEQ NS`` and a candidate tail ``x-bench SEQ NS``. Send times are
``time.monotonic_ns()``, one clock for every process on the machine.
Frames are built from pre-escaped JSON templates to keep the generator lean.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import orjson

CANDIDATES_PER_SIDE = 10
SDP_TARGET_BYTES = 6000
SDP_MARK = "a=x-bench:"
CANDIDATE_MARK = " x-bench "


def make_sdp(kind: str, target: int = SDP_TARGET_BYTES, seed: int = 1) -> str:
    """A plausible two-section (audio + video) SDP of about ``target`` bytes."""
    rnd = random.Random(seed)
    lines = [
        "v=0",
        f"o=- {rnd.randrange(10**18)} 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0 1",
        "a=extmap-allow-mixed",
        "a=msid-semantic: WMS stream",
    ]
    setup = "actpass" if kind == "offer" else "active"
    fingerprint = ":".join(f"{rnd.randrange(256):02X}" for _ in range(32))
    for mid, media in enumerate(("audio", "video")):
        lines += [
            f"m={media} 9 UDP/TLS/RTP/SAVPF 96 97 98 99 100 101 102 103",
            "c=IN IP4 0.0.0.0",
            "a=rtcp:9 IN IP4 0.0.0.0",
            f"a=ice-ufrag:{rnd.randrange(16**8):08x}",
            f"a=ice-pwd:{rnd.randrange(16**24):024x}",
            "a=ice-options:trickle",
            f"a=fingerprint:sha-256 {fingerprint}",
            f"a=setup:{setup}",
            f"a=mid:{mid}",
            "a=sendrecv",
            f"a=msid:stream track{mid}",
            "a=rtcp-mux",
        ]
    pt = 96
    while sum(len(x) + 2 for x in lines) < target - 40:
        lines += [
            f"a=rtpmap:{pt} VP8/90000",
            f"a=rtcp-fb:{pt} goog-remb",
            f"a=rtcp-fb:{pt} transport-cc",
            f"a=rtcp-fb:{pt} ccm fir",
            f"a=rtcp-fb:{pt} nack",
            f"a=fmtp:{pt} level-asymmetry-allowed=1;x={rnd.randrange(10**6)}",
        ]
        pt += 1
    return "\r\n".join(lines) + "\r\n"


def make_candidate(index: int) -> str:
    return (
        f"candidate:{1000000 + index} 1 udp {2122260223 - index} 192.0.2.{index + 1} "
        f"{50000 + index} typ host generation 0 ufrag abcd network-id 1"
    )


def _escaped(text: str) -> str:
    """``text`` as the inside of a JSON string literal."""
    return orjson.dumps(text).decode()[1:-1]


@dataclass(frozen=True)
class CallTemplates:
    """Pre-escaped SDP and candidate bodies for one side of a call."""

    sdp: str
    candidates: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def build(cls, kind: str, seed: int) -> CallTemplates:
        return cls(
            _escaped(make_sdp(kind, seed=seed)),
            tuple(_escaped(make_candidate(i)) for i in range(CANDIDATES_PER_SIDE)),
        )

    def sdp_json(self, kind: str, seq: int, sent_ns: int) -> str:
        """``{"type": kind, "sdp": ...}`` stamped with ``seq`` and ``sent_ns``."""
        return f'{{"type":"{kind}","sdp":"{self.sdp}{SDP_MARK}{seq} {sent_ns}\\r\\n"}}'

    def candidate_json(self, index: int, seq: int, sent_ns: int) -> str:
        return (
            f'{{"candidate":"{self.candidates[index]}{CANDIDATE_MARK}{seq} {sent_ns}",'
            f'"sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"abcd"}}'
        )


def sdp_stamp(sdp: str) -> tuple[int, int]:
    """``(seq, sent_ns)`` from a stamped SDP."""
    at = sdp.rindex(SDP_MARK) + len(SDP_MARK)
    seq, sent = sdp[at:].split()
    return int(seq), int(sent)


def candidate_stamp(candidate: str) -> tuple[int, int]:
    at = candidate.rindex(CANDIDATE_MARK) + len(CANDIDATE_MARK)
    seq, sent = candidate[at:].split()
    return int(seq), int(sent)


@dataclass
class SequenceCheck:
    """Counts lost, duplicated and out-of-order messages of one stream.

    Messages of one stream carry ``seq`` 0..expected-1 and must arrive each
    once, in order.
    """

    expected: int
    received: int = 0
    duplicated: int = 0
    reordered: int = 0
    _seen: set[int] = field(default_factory=set)
    _last: int = -1

    def see(self, seq: int) -> None:
        if seq in self._seen:
            self.duplicated += 1
            return
        self._seen.add(seq)
        self.received += 1
        if seq < self._last:
            self.reordered += 1
        self._last = max(self._last, seq)

    @property
    def lost(self) -> int:
        return self.expected - len(self._seen)

    @property
    def complete(self) -> bool:
        return len(self._seen) == self.expected
