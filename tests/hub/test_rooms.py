"""Unit tests of the pure room core: every rule, no server."""

from __future__ import annotations

import pytest

from signaling.protocol import Candidate, Description, ErrorCode, SignalingError
from signaling.rooms import Limits, Rooms, Send

OFFER = Description("offer", "v=0 offer")
OFFER2 = Description("offer", "v=0 renegotiated")
ANSWER = Description("answer", "v=0 answer")


def cand(i: int) -> Candidate:
    return Candidate(f"candidate:{i} 1 udp 1 127.0.0.1 {5000 + i} typ host", "0", 0)


def cj(i: int) -> dict[str, object]:
    return {"candidate": cand(i).candidate, "sdpMid": "0", "sdpMLineIndex": 0}


@pytest.fixture
def rooms() -> Rooms:
    r = Rooms(Limits(max_candidates=5, max_rooms_per_socket=2, offer_ttl=10))
    for sid in ("A", "B", "C"):
        r.connect(sid, name=f"name-{sid}")
    return r


def refused(code: ErrorCode, fn: object, *args: object) -> SignalingError:
    with pytest.raises(SignalingError) as info:
        fn(*args)  # type: ignore[operator]
    assert info.value.code == code
    assert info.value.message
    return info.value


def test_caller_first_offer_and_candidates_are_held_then_given_to_the_answerer(
    rooms: Rooms,
) -> None:
    out = rooms.offer("A", "r", OFFER, now=0)
    assert out.ack == {"ok": True, "role": "caller", "held": True}
    assert out.sends == []
    for i in range(3):
        assert rooms.candidate("A", "r", cand(i)).ack == {"ok": True, "held": True}
    assert rooms.candidate("A", "r", None).ack == {"ok": True, "held": True}

    out = rooms.join("B", "r", now=1)
    assert out.ack == {
        "ok": True,
        "role": "answerer",
        "offer": {"type": "offer", "sdp": "v=0 offer"},
        "candidates": [cj(0), cj(1), cj(2), None],
    }
    assert out.sends == []
    room = rooms.get("r")
    assert room is not None and room.offer is None and room.held == []  # freed once given

    out = rooms.candidate("A", "r", cand(9))
    assert out.ack == {"ok": True, "held": False}
    assert out.sends == [Send("B", "candidate", {"room": "r", "candidate": cj(9)})]


def test_answerer_first_waits_then_receives_the_offer_as_an_event(rooms: Rooms) -> None:
    out = rooms.join("B", "r", now=0)
    assert out.ack == {"ok": True, "role": "answerer", "offer": None, "candidates": []}
    refused(ErrorCode.NO_PEER, rooms.answer, "B", "r", ANSWER)
    refused(ErrorCode.NO_PEER, rooms.candidate, "B", "r", cand(0))

    out = rooms.offer("A", "r", OFFER, now=1)
    assert out.ack == {"ok": True, "role": "caller", "held": False}
    assert out.sends == [
        Send("B", "offer", {"room": "r", "description": OFFER.to_json(), "candidates": []})
    ]
    out = rooms.answer("B", "r", ANSWER)
    assert out.sends == [Send("A", "answer", {"room": "r", "description": ANSWER.to_json()})]
    out = rooms.candidate("B", "r", None)
    assert out.sends == [Send("A", "candidate", {"room": "r", "candidate": None})]


def test_renegotiation_replaces_held_offer_and_candidates(rooms: Rooms) -> None:
    rooms.offer("A", "r", OFFER, 0)
    rooms.candidate("A", "r", cand(1))
    assert rooms.offer("A", "r", OFFER2, 1).ack["held"] is True
    rooms.candidate("A", "r", cand(2))
    ack = rooms.join("B", "r", 2).ack
    assert ack["offer"] == OFFER2.to_json()
    assert ack["candidates"] == [cj(2)]


def test_renegotiation_with_answerer_present_is_delivered(rooms: Rooms) -> None:
    rooms.offer("A", "r", OFFER, 0)
    rooms.join("B", "r", 1)
    out = rooms.offer("A", "r", OFFER2, 2)
    assert out.ack == {"ok": True, "role": "caller", "held": False}
    assert out.sends[0].to == "B" and out.sends[0].payload["description"] == OFFER2.to_json()


def test_room_busy_full_wrong_role(rooms: Rooms) -> None:
    rooms.offer("A", "r", OFFER, 0)
    refused(ErrorCode.ROOM_BUSY, rooms.offer, "C", "r", OFFER, 0)
    refused(ErrorCode.WRONG_ROLE, rooms.join, "A", "r", 0)
    rooms.join("B", "r", 0)
    refused(ErrorCode.ROOM_FULL, rooms.join, "C", "r", 0)
    refused(ErrorCode.WRONG_ROLE, rooms.offer, "B", "r", OFFER, 0)
    refused(ErrorCode.WRONG_ROLE, rooms.answer, "A", "r", ANSWER)
    # the same answerer joining again is harmless
    assert rooms.join("B", "r", 0).ack["offer"] is None


def test_not_in_room(rooms: Rooms) -> None:
    rooms.offer("A", "r", OFFER, 0)
    refused(ErrorCode.NOT_IN_ROOM, rooms.answer, "C", "r", ANSWER)
    refused(ErrorCode.NOT_IN_ROOM, rooms.candidate, "C", "r", cand(0))
    refused(ErrorCode.NOT_IN_ROOM, rooms.hangup, "C", "r")
    refused(ErrorCode.NOT_IN_ROOM, rooms.hangup, "A", "other")


def test_candidate_limit_is_enforced_and_nothing_else_changes(rooms: Rooms) -> None:
    rooms.offer("A", "r", OFFER, 0)
    for i in range(5):
        rooms.candidate("A", "r", cand(i))
    refused(ErrorCode.LIMIT, rooms.candidate, "A", "r", cand(5))
    assert rooms.join("B", "r", 0).ack["candidates"] == [cj(i) for i in range(5)]


def test_rooms_per_socket_limit(rooms: Rooms) -> None:
    rooms.offer("A", "r1", OFFER, 0)
    rooms.join("A", "r2", 0)
    refused(ErrorCode.LIMIT, rooms.offer, "A", "r3", OFFER, 0)
    refused(ErrorCode.LIMIT, rooms.join, "A", "r3", 0)
    assert rooms.get("r3") is None
    # renegotiating in a room it is already in is not a new room
    assert rooms.offer("A", "r1", OFFER2, 0).ack["ok"]


def test_hangup_tells_the_other_party_and_deletes_the_room(rooms: Rooms) -> None:
    rooms.offer("A", "r", OFFER, 0)
    rooms.join("B", "r", 0)
    out = rooms.hangup("B", "r")
    assert out.ack == {"ok": True}
    assert out.sends == [Send("A", "hangup", {"room": "r", "reason": "hangup"})]
    assert rooms.get("r") is None and len(rooms) == 0
    assert rooms.rooms_of("A") == frozenset() == rooms.rooms_of("B")
    # the room name is free again
    assert rooms.offer("C", "r", OFFER, 1).ack["held"] is True


def test_disconnect_is_peer_left_in_every_room(rooms: Rooms) -> None:
    rooms.offer("A", "r1", OFFER, 0)
    rooms.join("B", "r1", 0)
    rooms.join("A", "r2", 0)
    rooms.offer("C", "r2", OFFER, 0)
    sends = rooms.disconnect("A")
    assert sends == [
        Send("B", "hangup", {"room": "r1", "reason": "peer_left"}),
        Send("C", "hangup", {"room": "r2", "reason": "peer_left"}),
    ]
    assert len(rooms) == 0
    assert rooms.disconnect("A") == []  # twice is harmless


def test_lonely_rooms_expire_paired_rooms_do_not(rooms: Rooms) -> None:
    rooms.offer("A", "held", OFFER, 0)
    rooms.join("B", "waiting", 1)
    rooms.offer("C", "paired", OFFER, 2)
    rooms.join("B", "paired", 2)
    assert rooms.expire(now=10.5) == [Send("A", "hangup", {"room": "held", "reason": "expired"})]
    assert rooms.expire(now=11.5) == [Send("B", "hangup", {"room": "waiting", "reason": "expired"})]
    assert rooms.expire(now=1000) == []
    assert rooms.get("paired") is not None


def test_lobby_lists_held_offers_only(rooms: Rooms) -> None:
    v0 = rooms.lobby_version
    rooms.offer("A", "r1", OFFER, 0)
    rooms.join("B", "r2", 0)
    assert rooms.lobby(now=2.5) == [{"room": "r1", "caller": "name-A", "waitingSeconds": 2.5}]
    assert rooms.lobby_version > v0
    v1 = rooms.lobby_version
    rooms.join("C", "r1", 3)
    assert rooms.lobby(now=3) == []
    assert rooms.lobby_version > v1


def test_messages_to_a_room_never_reach_another_room(rooms: Rooms) -> None:
    rooms.connect("D", None)
    rooms.offer("A", "r1", OFFER, 0)
    rooms.join("B", "r1", 0)
    rooms.offer("C", "r2", OFFER, 0)
    rooms.join("D", "r2", 0)
    targets = {s.to for s in rooms.candidate("A", "r1", cand(0)).sends}
    targets |= {s.to for s in rooms.answer("B", "r1", ANSWER).sends}
    targets |= {s.to for s in rooms.hangup("A", "r1").sends}
    assert targets == {"A", "B"}
    assert rooms.get("r2") is not None
