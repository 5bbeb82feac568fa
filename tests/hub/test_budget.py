"""The held-bytes budget through the pure room core: charged while held, released always."""

from __future__ import annotations

import logging

import pytest

from signaling.budget import HeldBudget, candidate_bytes, description_bytes
from signaling.guards import AddressCounter, RateLimitedWarning, TokenThrottle
from signaling.protocol import Candidate, Description, ErrorCode, SignalingError
from signaling.rooms import Limits, Rooms

OFFER = Description("offer", "v=0 " + "a" * 1000)
CAND = Candidate("candidate:1 1 udp 1 127.0.0.1 5000 typ host", "0", 0)


def hub_rooms(budget: HeldBudget) -> Rooms:
    rooms = Rooms(Limits(), budget)
    for sid, address in (("A", "10.0.0.1"), ("B", "10.0.0.1"), ("C", "10.0.0.2")):
        rooms.connect(sid)
        budget.register(sid, address)
    return rooms


def test_held_data_is_charged_and_released_on_every_path() -> None:
    budget = HeldBudget()
    rooms = hub_rooms(budget)
    held = description_bytes(OFFER) + candidate_bytes(CAND) + candidate_bytes(None)
    rooms.offer("A", "r1", OFFER, 0.0)
    rooms.candidate("A", "r1", CAND)
    rooms.candidate("A", "r1", None)
    assert budget.total == budget.held_by("A") == held
    rooms.offer("A", "r1", OFFER, 1.0)  # a renegotiated offer replaces what was held
    assert budget.total == description_bytes(OFFER)
    rooms.join("C", "r1", 2.0)  # delivered: nothing held any more
    assert budget.total == 0
    rooms.offer("A", "r2", OFFER, 3.0)
    rooms.hangup("A", "r2")
    rooms.offer("A", "r3", OFFER, 4.0)
    rooms.expire(1000.0)
    rooms.offer("B", "r4", OFFER, 1000.0)
    rooms.disconnect("B")
    budget.forget("B")
    assert budget.total == 0 and budget.held_by("A") == budget.held_by("B") == 0


def test_caps_refuse_before_anything_changes() -> None:
    budget = HeldBudget(max_total=3 * description_bytes(OFFER), max_per_address=2 * 1300)
    rooms = hub_rooms(budget)
    rooms.offer("A", "a1", OFFER, 0.0)
    rooms.offer("B", "b1", OFFER, 0.0)  # same address as A: at its cap now
    with pytest.raises(SignalingError) as info:
        rooms.offer("B", "b2", OFFER, 0.0)
    assert info.value.code is ErrorCode.LIMIT and "--max-held-bytes-per-address" in str(info.value)
    assert rooms.get("b2") is None and rooms.rooms_of("B") == {"b1"}
    rooms.offer("C", "c1", OFFER, 0.0)
    with pytest.raises(SignalingError, match="--max-held-bytes "):
        rooms.offer("C", "c2", OFFER, 0.0)


def test_address_counter_and_token_throttle() -> None:
    counter = AddressCounter(2)
    assert counter.acquire("x") and counter.acquire("x") and not counter.acquire("x")
    counter.release("x")
    counter.release("x")
    assert len(counter) == 0
    throttle = TokenThrottle(max_failures=2, window=10.0)
    throttle.failed("x", 0.0)
    assert throttle.wait("x", 1.0) == 0.0
    throttle.failed("x", 1.0)
    assert throttle.wait("x", 4.0) == 6.0 and throttle.wait("y", 4.0) == 0.0
    assert throttle.wait("x", 10.0) == 0.0 and len(throttle) == 0


def test_rate_limited_warning_forgets_old_kinds_and_keeps_what_it_owes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    warnings = RateLimitedWarning(logging.getLogger("test.ratelimit"), interval=10.0)
    with caplog.at_level(logging.WARNING, "test.ratelimit"):
        warnings.warn("kept", 0.0, "kept")
        warnings.warn("kept", 1.0, "kept")  # suppressed: owed in the next line
        for n in range(5 * RateLimitedWarning.PRUNE_AT):  # kinds made of what clients sent
            warnings.warn(f"kind {n}", 20.0 + n * 10.0, "line %d", n)
        assert len(warnings) <= RateLimitedWarning.PRUNE_AT + 1
        warnings.warn("kept", 1e6, "kept")
    assert caplog.messages[-1] == "kept (and 1 more like it since the last such line)"
    assert len(caplog.messages) == 2 + 5 * RateLimitedWarning.PRUNE_AT
