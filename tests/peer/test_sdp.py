"""Pure description edits (peer.sdp), the answer plan (peer.negotiation) and the seam."""

from __future__ import annotations

import pytest

from peer import aiortc_seam, sdp
from peer.errors import NegotiationFailed
from peer.negotiation import plan_answer

OFFER = "\r\n".join(
    [
        "v=0",
        "o=- 1 1 IN IP4 0.0.0.0",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE cam 1 2",
        "m=video 9 UDP/TLS/RTP/SAVPF 102",
        "c=IN IP4 0.0.0.0",
        "a=mid:cam",
        "a=sendonly",
        "a=rtpmap:102 H264/90000",
        "a=fmtp:102 packetization-mode=1;profile-level-id=4d001f",
        "m=video 9 UDP/TLS/RTP/SAVPF 97 98 99",
        "c=IN IP4 0.0.0.0",
        "a=mid:1",
        "a=ice-ufrag:abcd",
        "a=ice-pwd:0123456789abcdef0123456789",
        "a=rtpmap:97 VP8/90000",
        "a=rtpmap:98 rtx/90000",
        "a=fmtp:98 apt=97",
        "a=rtpmap:99 H264/90000",
        "a=fmtp:99 packetization-mode=1;profile-level-id=42e01f",
        "a=candidate:1 1 udp 2122260223 10.0.0.7 5000 typ host",
        "a=end-of-candidates",
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
        "c=IN IP4 0.0.0.0",
        "a=mid:2",
        "a=sctp-port:5000",
        "",
    ]
)


def test_split_takes_candidates_and_end_of_candidates_out() -> None:
    d = sdp.split(OFFER)
    assert [s.kind for s in d.sections] == ["video", "video", "application"]
    assert [s.mid for s in d.sections] == ["cam", "1", "2"]
    assert d.sections[1].candidates == ["candidate:1 1 udp 2122260223 10.0.0.7 5000 typ host"]
    assert d.sections[1].end_of_candidates and not d.sections[0].end_of_candidates
    assert "a=candidate" not in sdp.join(d, d.sections)
    assert "a=end-of-candidates" in sdp.join(d, d.sections, candidates=True)
    assert d.section_for("2", None) is d.sections[2]
    assert d.section_for(None, 1) is d.sections[1]
    assert d.section_for("zz", 0) is None


@pytest.mark.parametrize("hooks", [True, False])
def test_plan_rejects_h264_main_and_orders_by_preference(
    hooks: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiortc's own codec matching and the public-API fallback decide the same."""
    monkeypatch.setattr(aiortc_seam, "_checked", hooks)
    plan = plan_answer(sdp.split(OFFER), "r", codec="h264")
    assert [r.section.mid for r in plan.rejected] == ["cam"]
    assert "offered H264 (profile-level-id=4d001f)" in plan.rejected[0].reason
    assert plan.kept[0].lines[0] == "m=video 9 UDP/TLS/RTP/SAVPF 99 97 98"
    rtpmaps = [ln for ln in plan.kept[0].lines if ln.startswith("a=rtpmap")]
    assert rtpmaps[0] == "a=rtpmap:99 H264/90000"
    assert "a=group:BUNDLE 1 2" in plan.aiortc_offer
    assert "a=mid:cam" not in plan.aiortc_offer


def test_rejected_sections_go_back_into_the_answer_at_their_place() -> None:
    offer = sdp.split(OFFER)
    made = sdp.join(offer, offer.sections[1:], candidates=True)
    answer = sdp.split(sdp.with_rejected(made, offer, offer.sections[:1]))
    assert [(s.mid, s.port) for s in answer.sections] == [("cam", 0), ("1", 9), ("2", 9)]
    assert "a=inactive" in answer.sections[0].lines
    assert answer.sections[1].candidates and answer.sections[1].end_of_candidates


def test_nothing_usable_is_named() -> None:
    offer = sdp.split(OFFER)
    only = sdp.split(sdp.join(offer, offer.sections[:1]))
    with pytest.raises(NegotiationFailed, match=r"m-section 0 \(video, mid 'cam'\)"):
        plan_answer(only, "r")


def test_seam_knows_its_series() -> None:
    assert aiortc_seam.check()
    assert aiortc_seam.check("1.16.3")
    assert not aiortc_seam.check("1.17.0")
    assert not aiortc_seam.check("2.0.0")
