"""The room rules: who may offer, join, answer and trickle, and what is held.

A pure state machine: no sockets, no asyncio, no clock. Every method takes the
already-parsed request (and ``now`` where time matters) and returns what the hub
must send to whom, so the whole call flow is unit-testable and the I/O adapter
cannot reorder or duplicate anything: it sends exactly the list it is given, in
order, before it handles the next event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .budget import HeldBudget, candidate_bytes, description_bytes
from .protocol import (
    Candidate,
    Description,
    ErrorCode,
    Event,
    HangupReason,
    SignalingError,
    candidate_json,
    ok,
)

Payload = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Send:
    """One hub→client event the adapter must emit."""

    to: str
    event: str
    payload: Payload


@dataclass(slots=True)
class Outcome:
    """The ack for the requester and the events for others, in order."""

    ack: Payload
    sends: list[Send] = field(default_factory=list)


@dataclass(slots=True)
class Room:
    name: str
    created: float
    caller: str | None = None
    answerer: str | None = None
    offer: Description | None = None
    held: list[Candidate | None] = field(default_factory=list)
    held_bytes: int = 0  # charged to the caller in the hub's HeldBudget
    listed: bool = True  # False for a private room: never shown in the lobby

    def other(self, sid: str) -> str | None:
        return self.answerer if sid == self.caller else self.caller

    @property
    def paired(self) -> bool:
        return self.caller is not None and self.answerer is not None


@dataclass(frozen=True, slots=True)
class Limits:
    max_sdp_bytes: int = 65536
    max_candidates: int = 200
    max_rooms_per_socket: int = 8
    offer_ttl: float = 600.0


class Rooms:
    """All rooms of one hub and the rooms each party is in.

    A party is whatever id the caller of these methods uses: the hub passes session
    keys (``signaling/sessions.py``), so a party outlives the socket that carries it.
    """

    def __init__(self, limits: Limits | None = None, budget: HeldBudget | None = None) -> None:
        self.limits = limits or Limits()
        self.budget = budget or HeldBudget()
        self._rooms: dict[str, Room] = {}
        self._membership: dict[str, set[str]] = {}
        self._names: dict[str, str | None] = {}
        self.lobby_version = 0

    # -- parties -----------------------------------------------------------

    def connect(self, sid: str, name: str | None = None) -> None:
        self._membership[sid] = set()
        self._names[sid] = name

    def disconnect(self, sid: str, reason: HangupReason = HangupReason.PEER_LEFT) -> list[Send]:
        """The party is gone: every room it was in ends, the others hear ``reason``."""
        sends: list[Send] = []
        for name in sorted(self._membership.get(sid, ())):
            sends.extend(self._close(self._rooms[name], sid, reason))
        self._membership.pop(sid, None)
        self._names.pop(sid, None)
        return sends

    def end(self, room_name: str, leaver: str | None, reason: HangupReason) -> list[Send]:
        """End one room now; every party but ``leaver`` hears ``reason``."""
        room = self._rooms.get(room_name)
        return [] if room is None else self._close(room, leaver, reason)

    # -- requests ----------------------------------------------------------

    def offer(
        self,
        sid: str,
        room_name: str,
        description: Description,
        now: float,
        listed: bool = True,
    ) -> Outcome:
        room = self._rooms.get(room_name)
        if room is not None:
            if room.answerer == sid:
                raise SignalingError(
                    ErrorCode.WRONG_ROLE,
                    f"offer: you are the answerer of room {room_name!r}; only its caller "
                    "may send an offer",
                )
            if room.caller is not None and room.caller != sid:
                raise SignalingError(
                    ErrorCode.ROOM_BUSY,
                    f"offer: room {room_name!r} already has a caller; pick another room "
                    "or join this one as the answerer",
                )
        if room is None or room.caller is None:
            self._check_room_count(sid, "offer")
        held_size = 0
        if room is None or room.answerer is None:
            held_size = description_bytes(description)
            self.budget.charge(sid, held_size, "offer")  # before any change: may refuse
        if room is None:
            room = self._create(room_name, now)
        room.caller = sid
        room.listed = listed
        self._membership[sid].add(room_name)
        if room.answerer is None:
            if room.offer is None:
                self.lobby_version += 1
            room.offer = description
            self._drop_held(room)
            room.held_bytes = held_size
            return Outcome(ok(role="caller", held=True))
        room.offer = None
        self._drop_held(room)
        delivered = {"room": room_name, "description": description.to_json(), "candidates": []}
        return Outcome(ok(role="caller", held=False), [Send(room.answerer, Event.OFFER, delivered)])

    def join(self, sid: str, room_name: str, now: float) -> Outcome:
        room = self._rooms.get(room_name)
        if room is not None:
            if room.caller == sid:
                raise SignalingError(
                    ErrorCode.WRONG_ROLE,
                    f"join: you are the caller of room {room_name!r}; the answerer must be "
                    "another connection",
                )
            if room.answerer == sid:
                return Outcome(ok(role="answerer", offer=None, candidates=[]))
            if room.answerer is not None:
                raise SignalingError(
                    ErrorCode.ROOM_FULL,
                    f"join: room {room_name!r} already has an answerer; a room holds one "
                    "caller and one answerer",
                )
        self._check_room_count(sid, "join")
        if room is None:
            room = self._create(room_name, now)
        room.answerer = sid
        self._membership[sid].add(room_name)
        offer = None if room.offer is None else room.offer.to_json()
        held = [candidate_json(c) for c in room.held]
        if room.offer is not None:
            self.lobby_version += 1
        room.offer = None
        self._drop_held(room)
        return Outcome(ok(role="answerer", offer=offer, candidates=held))

    def answer(self, sid: str, room_name: str, description: Description) -> Outcome:
        room = self._member_room(sid, room_name, "answer")
        if room.caller == sid:
            raise SignalingError(
                ErrorCode.WRONG_ROLE,
                f"answer: you are the caller of room {room_name!r}; only its answerer "
                "may send an answer",
            )
        if room.caller is None:
            raise SignalingError(
                ErrorCode.NO_PEER,
                f"answer: room {room_name!r} has no caller yet; wait for its offer",
            )
        payload = {"room": room_name, "description": description.to_json()}
        return Outcome(ok(), [Send(room.caller, Event.ANSWER, payload)])

    def candidate(self, sid: str, room_name: str, candidate: Candidate | None) -> Outcome:
        room = self._member_room(sid, room_name, "candidate")
        other = room.other(sid)
        if other is None:
            if sid == room.answerer:
                raise SignalingError(
                    ErrorCode.NO_PEER,
                    f"candidate: room {room_name!r} has no caller yet; send candidates "
                    "after its offer arrives",
                )
            if len(room.held) >= self.limits.max_candidates:
                raise SignalingError(
                    ErrorCode.LIMIT,
                    f"candidate: room {room_name!r} already holds "
                    f"{self.limits.max_candidates} candidates, the most it keeps until "
                    "an answerer joins",
                )
            size = candidate_bytes(candidate)
            self.budget.charge(sid, size, "candidate")
            room.held.append(candidate)
            room.held_bytes += size
            return Outcome(ok(held=True))
        payload = {"room": room_name, "candidate": candidate_json(candidate)}
        return Outcome(ok(held=False), [Send(other, Event.CANDIDATE, payload)])

    def hangup(self, sid: str, room_name: str) -> Outcome:
        room = self._member_room(sid, room_name, "hangup")
        return Outcome(ok(), self._close(room, sid, HangupReason.HANGUP))

    def lobby(self, now: float) -> list[Payload]:
        """Rooms with a held offer and no answerer, oldest first."""
        return [
            {
                "room": room.name,
                "caller": self._names.get(room.caller) if room.caller else None,
                "waitingSeconds": round(max(0.0, now - room.created), 3),
            }
            for room in self._rooms.values()
            if room.offer is not None and room.answerer is None and room.listed
        ]

    @property
    def held_count(self) -> int:
        """Rooms holding an offer for an answerer, private ones included."""
        return sum(1 for r in self._rooms.values() if r.offer is not None and r.answerer is None)

    def expire(self, now: float) -> list[Send]:
        """End rooms that have had a single party for longer than the TTL."""
        deadline = now - self.limits.offer_ttl
        sends: list[Send] = []
        expired: list[Room] = []
        for room in self._rooms.values():  # creation order: oldest first
            if room.created > deadline:
                break
            if not room.paired:
                expired.append(room)
        for room in expired:
            sends.extend(self._close(room, None, HangupReason.EXPIRED))
        return sends

    # -- introspection -----------------------------------------------------

    def __len__(self) -> int:
        return len(self._rooms)

    def names(self) -> list[str]:
        return list(self._rooms)

    def get(self, room_name: str) -> Room | None:
        return self._rooms.get(room_name)

    def rooms_of(self, sid: str) -> frozenset[str]:
        return frozenset(self._membership.get(sid, ()))

    @property
    def socket_count(self) -> int:
        return len(self._membership)

    def name_of(self, sid: str) -> str | None:
        return self._names.get(sid)

    # -- internals ---------------------------------------------------------

    def _create(self, room_name: str, now: float) -> Room:
        room = Room(room_name, now)
        self._rooms[room_name] = room
        return room

    def _check_room_count(self, sid: str, event: str) -> None:
        if len(self._membership[sid]) >= self.limits.max_rooms_per_socket:
            raise SignalingError(
                ErrorCode.LIMIT,
                f"{event}: this connection is already in {self.limits.max_rooms_per_socket} "
                "rooms, the most one connection may be in; hang up one first",
            )

    def _member_room(self, sid: str, room_name: str, event: str) -> Room:
        room = self._rooms.get(room_name)
        if room is None or sid not in (room.caller, room.answerer):
            raise SignalingError(
                ErrorCode.NOT_IN_ROOM,
                f"{event}: you are not in room {room_name!r}; send offer or join first",
            )
        return room

    def _drop_held(self, room: Room) -> None:
        """Forget the room's held candidates and release what its held data was charged."""
        room.held = []
        if room.held_bytes and room.caller is not None:
            self.budget.release(room.caller, room.held_bytes)
        room.held_bytes = 0

    def _close(self, room: Room, leaver: str | None, reason: HangupReason) -> list[Send]:
        """Delete the room; tell every party but ``leaver`` why."""
        del self._rooms[room.name]
        if room.offer is not None and room.answerer is None:
            self.lobby_version += 1
        self._drop_held(room)
        sends = []
        for party in (room.caller, room.answerer):
            if party is None:
                continue
            self._membership.get(party, set()).discard(room.name)
            if party != leaver:
                sends.append(Send(party, Event.HANGUP, {"room": room.name, "reason": reason.value}))
        return sends
