"""Unit tests of the pure session core (signaling/sessions.py): resume rules, no server."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from signaling.protocol import Candidate, Description, ErrorCode, SignalingError
from signaling.rooms import Limits, Outcome, Rooms
from signaling.sessions import (
    ACK_BYTES,
    ACK_MEMORY,
    LOG_BYTES,
    Emit,
    Ended,
    ResumeError,
    Session,
    Sessions,
    resume_message,
    session_key,
)

OFFER = Description("offer", "v=0 offer")
ANSWER = Description("answer", "v=0 answer")
GRACE = 30.0


def cand(i: int) -> Candidate:
    return Candidate(f"candidate:{i} 1 udp 1 127.0.0.1 {5000 + i} typ host", "0", 0)


def make(grace: float = GRACE, max_candidates: int = 5) -> Sessions:
    counter = itertools.count(1)
    rooms = Rooms(Limits(max_candidates=max_candidates, max_rooms_per_socket=2, offer_ttl=600))
    return Sessions(rooms, grace, new_token=lambda: f"token-{next(counter):04d}-secret")


def events(emits: list[Emit]) -> list[tuple[str, str, Any]]:
    """(socket, event, payload without seq)."""
    return [(e.to, e.event, {k: v for k, v in e.payload.items() if k != "seq"}) for e in emits]


def run(s: Sessions, socket: str, fn: Any, *args: Any, seq: int | None = None) -> Any:
    """One request through the session layer; returns (ack, emits)."""
    return s.request(socket, seq, lambda session: fn(session.key, *args))


def paired(s: Sessions) -> tuple[Session, Session]:
    caller = s.connect("sA", None, 0, "alice", 0).session
    answerer = s.connect("sB", None, 0, "bob", 0).session
    run(s, "sA", s.rooms.offer, "r", OFFER, 0.0)
    run(s, "sB", s.rooms.join, "r", 0.0)
    return caller, answerer


def test_new_sessions_have_distinct_tokens_and_keys_that_hide_them() -> None:
    s = Sessions(Rooms(), GRACE)
    a = s.connect("s1", None, 0, None, 0).session
    b = s.connect("s2", None, 0, None, 0).session
    assert a.token != b.token and len(a.token) >= 22
    assert a.key == session_key(a.token) and a.token not in a.key and a.key not in a.token


def test_room_events_are_numbered_per_session_without_gaps() -> None:
    s = make()
    caller, answerer = paired(s)
    _, emits = run(s, "sB", s.rooms.answer, "r", ANSWER)
    _, more = run(s, "sB", s.rooms.candidate, "r", cand(1))
    _, back = run(s, "sA", s.rooms.candidate, "r", cand(2))
    assert [(e.to, e.payload["seq"]) for e in emits + more] == [("sA", 1), ("sA", 2)]
    assert [(e.to, e.payload["seq"]) for e in back] == [("sB", 1)]
    assert caller.seq == 2 and answerer.seq == 1


def test_away_caller_gets_everything_on_resume_in_order_and_peer_sees_away_and_back() -> None:
    s = make()
    caller = s.connect("sA", None, 0, "alice", 0).session
    run(s, "sA", s.rooms.offer, "r", OFFER, 0.0)
    run(s, "sA", s.rooms.candidate, "r", cand(0))
    assert s.disconnect("sA", 1.0, leaving=False) == []  # nobody in the room to tell
    answerer = s.connect("sB", None, 0, "bob", 1.0).session
    ack, _ = run(s, "sB", s.rooms.join, "r", 1.0)
    assert ack["offer"] == OFFER.to_json() and len(ack["candidates"]) == 1
    for fn, args in ((s.rooms.answer, ("r", ANSWER)), (s.rooms.candidate, ("r", cand(7)))):
        _, emits = run(s, "sB", fn, *args)
        assert emits == []  # queued for the away caller
    resumed = s.connect("sA2", caller.token, 0, "alice", 5.0)
    assert resumed.resumed and resumed.session is caller and resumed.kicked is None
    assert [(e.event, e.payload["seq"]) for e in resumed.replay] == [
        ("answer", 1),
        ("candidate", 2),
    ]
    assert {e.to for e in resumed.replay} == {"sA2"}
    assert events(resumed.others) == [("sB", "peer_back", {"room": "r"})]
    assert answerer.seq == 1  # peer_back; no peer_away: the caller left before the join
    # live again
    _, emits = run(s, "sB", s.rooms.candidate, "r", cand(8))
    assert [(e.to, e.payload["seq"]) for e in emits] == [("sA2", 3)]


def test_peer_away_then_back_for_a_paired_room() -> None:
    s = make()
    caller, _ = paired(s)
    assert events(s.disconnect("sA", 1.0, leaving=False)) == [("sB", "peer_away", {"room": "r"})]
    again = s.connect("sA2", caller.token, caller.seq, None, 2.0)
    assert again.replay == []
    assert events(again.others) == [("sB", "peer_back", {"room": "r"})]


def test_replay_from_a_middle_last_seq() -> None:
    s = make()
    caller, _ = paired(s)
    run(s, "sB", s.rooms.answer, "r", ANSWER)
    for i in range(4):
        run(s, "sB", s.rooms.candidate, "r", cand(i))
    s.disconnect("sA", 1.0, leaving=False)
    again = s.connect("sA2", caller.token, 2, None, 2.0)
    assert [e.payload["seq"] for e in again.replay] == [3, 4, 5]
    assert [e.payload["candidate"]["candidate"] for e in again.replay] == [
        cand(i).candidate for i in (1, 2, 3)
    ]


def test_takeover_kicks_the_older_socket_and_tells_nobody() -> None:
    s = make()
    caller, _ = paired(s)
    run(s, "sB", s.rooms.answer, "r", ANSWER)  # lost in the half-open socket
    taken = s.connect("sA2", caller.token, 0, None, 1.0)
    assert taken.resumed and taken.kicked == "sA" and taken.others == []
    assert [e.event for e in taken.replay] == ["answer"]
    assert s.disconnect("sA", 1.5, leaving=False) == []  # the kicked socket closing
    assert s.of_socket("sA2") is caller and not caller.away


def test_grace_expiry_gives_peer_left_not_before_the_grace() -> None:
    s = make()
    caller, _ = paired(s)
    s.disconnect("sA", 100.0, leaving=False)
    assert s.expire(100.0 + GRACE - 0.001) == []
    assert events(s.expire(100.0 + GRACE)) == [
        ("sB", "hangup", {"room": "r", "reason": "peer_left"})
    ]
    assert s.rooms.get("r") is None and len(s) == 1
    again = s.connect("sA2", caller.token, 0, None, 200.0)
    assert not again.resumed and again.resume_error is ResumeError.EXPIRED
    assert again.session.token != caller.token


def test_unknown_session_is_a_new_session() -> None:
    s = make()
    c = s.connect("s1", "no-such-session", 3, None, 0)
    assert not c.resumed and c.resume_error is ResumeError.UNKNOWN and c.replay == []


def test_a_last_seq_above_what_was_sent_is_refused_and_changes_nothing() -> None:
    s = make()
    caller, _ = paired(s)
    s.disconnect("sA", 1.0, leaving=False)
    with pytest.raises(ValueError, match=rf"lastSeq {caller.seq + 1} is above .*\({caller.seq}\)"):
        s.connect("sA2", caller.token, caller.seq + 1, None, 2.0)
    assert caller.away and caller.socket is None and s.of_socket("sA2") is None
    back = s.connect("sA3", caller.token, caller.seq, None, 3.0)
    assert back.resumed and back.replay == []


def test_grace_zero_is_v1_peer_left_at_once() -> None:
    s = make(grace=0)
    caller, _ = paired(s)
    assert events(s.disconnect("sA", 1.0, leaving=False)) == [
        ("sB", "hangup", {"room": "r", "reason": "peer_left"})
    ]
    assert s.connect("sA2", caller.token, 0, None, 1.0).resume_error is ResumeError.EXPIRED


def test_leaving_on_purpose_ends_at_once() -> None:
    s = make()
    paired(s)
    assert events(s.disconnect("sA", 1.0, leaving=True)) == [
        ("sB", "hangup", {"room": "r", "reason": "peer_left"})
    ]


def test_bye_ends_rooms_now_and_gives_a_fresh_session() -> None:
    s = make()
    caller, _ = paired(s)
    fresh, emits = s.bye("sA", "alice")
    assert events(emits) == [("sB", "hangup", {"room": "r", "reason": "peer_left"})]
    assert fresh.token != caller.token and s.of_socket("sA") is fresh
    assert s.connect("sX", caller.token, 0, None, 1.0).resume_error is ResumeError.EXPIRED


def test_a_resume_of_an_ended_session_says_why_it_ended() -> None:
    s = make()
    lonely = s.connect("sL", None, 0, None, 0).session  # in no room
    s.disconnect("sL", 1.0, leaving=False)
    caller, _ = paired(s)
    s.disconnect("sA", 1.0, leaving=False)
    s.expire(1.0 + GRACE)
    left = s.connect("sC", None, 0, None, 0).session
    s.disconnect("sC", 1.0, leaving=True)
    gone = {"no room": lonely, "grace over": caller, "left": left}
    whys = {k: s.connect(f"n-{k}", v.token, 0, None, 2.0) for k, v in gone.items()}
    assert {k: (c.resume_error, c.ended) for k, c in whys.items()} == {
        "no room": (ResumeError.EXPIRED, Ended.NO_ROOM),
        "grace over": (ResumeError.EXPIRED, Ended.GRACE_OVER),
        "left": (ResumeError.EXPIRED, Ended.LEFT),
    }
    no_room = resume_message(ResumeError.EXPIRED, Ended.NO_ROOM, GRACE)
    assert no_room.startswith("nothing to resume: the session was in no room"), no_room
    assert "30 s" in resume_message(ResumeError.EXPIRED, Ended.GRACE_OVER, GRACE)
    assert "--resume-grace 0" in resume_message(ResumeError.EXPIRED, Ended.NO_GRACE, 0)
    assert "no record" in resume_message(ResumeError.UNKNOWN, None, GRACE)
    zero = make(grace=0)
    c0, _ = paired(zero)
    zero.disconnect("sA", 1.0, leaving=False)
    assert zero.connect("sA2", c0.token, 0, None, 2.0).ended is Ended.NO_GRACE


def test_duplicate_requests_get_the_first_ack_and_run_once() -> None:
    s = make()
    paired(s)
    ack1, emits1 = run(s, "sB", s.rooms.candidate, "r", cand(1), seq=1)
    ack2, emits2 = run(s, "sB", s.rooms.candidate, "r", cand(1), seq=1)
    assert ack1 == {"ok": True, "held": False} and len(emits1) == 1
    assert ack2 == {**ack1, "duplicate": True} and emits2 == []
    # a failure is remembered too
    bad1, _ = run(s, "sB", s.rooms.offer, "r", OFFER, 0.0, seq=2)
    bad2, _ = run(s, "sB", s.rooms.offer, "r", OFFER, 0.0, seq=2)
    assert bad1["error"]["code"] == "wrong_role" and bad2 == {**bad1, "duplicate": True}


def test_acks_older_than_the_memory_are_stale() -> None:
    s = make(max_candidates=500)
    paired(s)
    for seq in range(1, ACK_MEMORY + 3):
        run(s, "sB", s.rooms.candidate, "r", cand(seq), seq=seq)
    ack, _ = run(s, "sB", s.rooms.candidate, "r", cand(3), seq=3)
    assert ack["duplicate"] is True
    with pytest.raises(SignalingError) as info:
        run(s, "sB", s.rooms.candidate, "r", cand(1), seq=1)
    assert info.value.code == ErrorCode.STALE and "64" in info.value.message


def test_the_ack_memory_is_bounded_in_bytes_and_keeps_64_small_acks() -> None:
    s = make()
    s.connect("sA", None, 0, "alice", 0)
    big = {"ok": True, "offer": {"type": "offer", "sdp": "x" * (64 * 1024)}}
    for seq in range(1, 40):  # join-sized acks: only the newest few fit under the cap
        s.request("sA", seq, lambda session: Outcome(big))
    kept = [seq for seq in range(1, 40) if _remembered(s, seq)]
    assert 1 <= len(kept) <= ACK_BYTES // (64 * 1024)
    assert kept == list(range(40 - len(kept), 40))  # the newest ones, contiguous
    with pytest.raises(SignalingError) as info:
        s.request("sA", 1, lambda session: Outcome({"ok": True}))
    assert info.value.code == ErrorCode.STALE and "no longer remembered" in info.value.message
    for seq in range(40, 40 + ACK_MEMORY):  # small acks: the contract's 64 all fit
        s.request("sA", seq, lambda session: Outcome({"ok": True, "held": False}))
    assert all(_remembered(s, seq) for seq in range(40, 40 + ACK_MEMORY))
    assert not _remembered(s, 39)


def _remembered(s: Sessions, seq: int) -> bool:
    try:
        ack, _ = s.request("sA", seq, lambda session: Outcome({"ok": False}))
    except SignalingError:
        return False
    return bool(ack.get("duplicate"))


def test_a_skipped_seq_is_stale_and_said_to_be_never_processed() -> None:
    s = make()
    s.connect("sA", None, 0, "alice", 0)
    for seq in (1, 2, 3, 4, 6, 7, 8, 9, 10):  # 5 is never sent
        s.request("sA", seq, lambda session: Outcome({"ok": True}))
    with pytest.raises(SignalingError) as info:
        s.request("sA", 5, lambda session: Outcome({"ok": True}))
    message = info.value.message
    assert info.value.code == ErrorCode.STALE
    assert "never processed" in message and "not above the highest" in message
    assert "(10)" in message and "older than" not in message


def test_queue_for_an_away_party_is_bounded_and_the_room_ends_past_it() -> None:
    s = make(max_candidates=5)
    caller, _ = paired(s)
    s.disconnect("sA", 1.0, leaving=False)
    for i in range(5):
        ack, emits = run(s, "sB", s.rooms.candidate, "r", cand(i))
        assert ack["ok"] and emits == []
    ack, emits = run(s, "sB", s.rooms.candidate, "r", cand(5))
    assert events(emits) == [("sB", "hangup", {"room": "r", "reason": "peer_left"})]
    assert s.rooms.get("r") is None
    again = s.connect("sA2", caller.token, 0, None, 2.0)
    assert [e.event for e in again.replay] == ["candidate"] * 5 + ["hangup"]
    assert again.replay[-1].payload["reason"] == "peer_left"


def test_a_resume_from_before_the_log_ends_the_rooms() -> None:
    s = make()
    caller, _ = paired(s)
    for i in range(3):
        run(s, "sB", s.rooms.candidate, "r", cand(i))
    while len(caller.log) > 1:
        caller.log.popleft()  # as if the log had been trimmed past what the client saw
    again = s.connect("sA2", caller.token, 0, None, 1.0)
    assert not again.resumed and again.resume_error is ResumeError.EXPIRED
    assert events(again.others) == [("sB", "hangup", {"room": "r", "reason": "peer_left"})]
    assert again.kicked == "sA"


def test_the_replay_log_is_bounded_in_bytes_and_a_resume_past_it_fails_plainly() -> None:
    s = make()
    caller, _ = paired(s)
    big = Description("answer", "v=0 " + "x" * 60_000)
    for _ in range(40):  # 40 renegotiation answers of 60 kB: more than the log keeps
        run(s, "sB", s.rooms.answer, "r", big)
    assert caller.log_bytes <= LOG_BYTES and caller.log[0][0] > 1
    assert s.connect("sA2", caller.token, caller.seq - 1, None, 1.0).resumed  # recent: fine
    again = s.connect("sA3", caller.token, 0, None, 1.0)
    assert again.resume_error is ResumeError.EXPIRED


def test_a_request_from_a_taken_over_socket_is_refused_not_crashed() -> None:
    s = make()
    caller, _ = paired(s)
    s.connect("sA2", caller.token, 0, None, 1.0)
    with pytest.raises(SignalingError) as info:
        run(s, "sA", s.rooms.candidate, "r", cand(1))
    assert info.value.code == ErrorCode.NOT_IN_ROOM and "taken over" in info.value.message
    with pytest.raises(SignalingError):
        s.bye("sA", None)
