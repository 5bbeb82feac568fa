"""aiortc <-> browser JSON conversions for descriptions and candidates."""

from __future__ import annotations

import pytest
from aiortc import RTCIceCandidate, RTCSessionDescription

from peer.call import chat_message, parse_chat, video_codec
from peer.errors import SignalingError
from peer.protocol import (
    PUSHED_EVENTS,
    EndOfCandidates,
    candidate_from_json,
    candidate_from_line,
    candidate_to_json,
    description_from_json,
    description_to_json,
    parse_candidate,
)

CHROME_HOST = (
    "candidate:842163049 1 udp 2122260223 192.168.1.5 54321 typ host "
    "generation 0 ufrag abcd network-id 1"
)
CHROME_MDNS = (
    "candidate:1 1 udp 2122260223 0b7a6c2e-6a7e-4b1c-9a1a-2f5b1c3e4d5f.local 50000 typ host"
)


def test_browser_candidate_with_prefix() -> None:
    c = candidate_from_json({"candidate": CHROME_HOST, "sdpMid": "0", "sdpMLineIndex": 0})
    assert c is not None
    assert (c.ip, c.port, c.type, c.protocol) == ("192.168.1.5", 54321, "host", "udp")
    assert (c.sdpMid, c.sdpMLineIndex) == ("0", 0)


def test_round_trip_keeps_the_browser_shape() -> None:
    c = candidate_from_json({"candidate": CHROME_HOST, "sdpMid": "1", "sdpMLineIndex": 1})
    out = candidate_to_json(c)
    assert out is not None
    assert out["candidate"].startswith("candidate:842163049 1 udp 2122260223 192.168.1.5 54321")
    assert (out["sdpMid"], out["sdpMLineIndex"]) == ("1", 1)
    assert candidate_from_json(out) is not None


@pytest.mark.parametrize("raw", [None, {"candidate": ""}, {"candidate": "  ", "sdpMid": "0"}])
def test_end_of_candidates(raw: object) -> None:
    assert candidate_from_json(raw) is None
    assert candidate_to_json(None) is None


def test_mdns_candidate_is_kept_for_aioice_to_resolve() -> None:
    c = candidate_from_json({"candidate": CHROME_MDNS, "sdpMid": "0", "sdpMLineIndex": 0})
    assert c is not None and c.ip.endswith(".local")


def test_missing_mid_and_index_fall_back_to_the_bundle_transport() -> None:
    c = candidate_from_json({"candidate": CHROME_HOST})
    assert c is not None and c.sdpMLineIndex == 0


@pytest.mark.parametrize("raw", [42, {"candidate": 5}, {"candidate": "candidate:garbage"}])
def test_bad_candidates_are_refused(raw: object) -> None:
    with pytest.raises(SignalingError) as info:
        candidate_from_json(raw)
    assert info.value.code == "invalid"


def test_descriptions() -> None:
    d = description_from_json({"type": "offer", "sdp": "v=0\r\n"}, "offer")
    assert isinstance(d, RTCSessionDescription)
    assert description_to_json(d) == {"type": "offer", "sdp": "v=0\r\n"}
    with pytest.raises(SignalingError, match="answer"):
        description_from_json({"type": "offer", "sdp": "v=0"}, "answer")


def test_video_codec_from_sdp() -> None:
    sdp = (
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
        "m=video 9 UDP/TLS/RTP/SAVPF 102 103\r\nc=IN IP4 0.0.0.0\r\n"
        "a=rtpmap:102 H264/90000\r\na=rtpmap:103 rtx/90000\r\n"
    )
    assert video_codec(sdp) == "H264"


def test_chat_shape() -> None:
    msg = chat_message("hi", "ann", ts=7)
    assert msg == {"type": "chat", "text": "hi", "from": "ann", "ts": 7}
    import json

    assert parse_chat(json.dumps(msg)) == msg
    assert parse_chat("not json") is None
    assert parse_chat(json.dumps({"type": "other", "text": "x"})) is None
    assert parse_chat(b"\x00") is None


def test_empty_string_ends_only_its_m_section() -> None:
    end = parse_candidate({"candidate": "", "sdpMid": "1", "usernameFragment": "abcd"})
    assert end == EndOfCandidates(everything=False, mid="1", mline_index=None, ufrag="abcd")
    assert parse_candidate({"candidate": ""}) == EndOfCandidates()
    assert parse_candidate(None) == EndOfCandidates()
    assert parse_candidate({"candidate": " ", "sdpMLineIndex": 2}) == EndOfCandidates(
        everything=False, mline_index=2
    )


def test_empty_foundation_is_accepted() -> None:
    c = parse_candidate({"candidate": "candidate: 1 udp 2122260223 10.0.0.7 5000 typ host"})
    assert isinstance(c, RTCIceCandidate)
    assert (c.ip, c.port, c.component, c.type) == ("10.0.0.7", 5000, 1, "host")
    assert candidate_from_line(" 1 udp 1 10.0.0.7 5000 typ host").ip == "10.0.0.7"


def test_wire_names_come_from_the_contract() -> None:
    from signaling import protocol as wire

    assert PUSHED_EVENTS == (
        wire.Event.OFFER,
        wire.Event.ANSWER,
        wire.Event.CANDIDATE,
        wire.Event.HANGUP,
        wire.Event.PEER_AWAY,
        wire.Event.PEER_BACK,
    )
