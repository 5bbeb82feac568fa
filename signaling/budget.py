"""The hub-wide budget for held data: offers and candidates waiting for an answerer.

Per-socket limits (rooms per socket, candidates per room, SDP size) bound one
connection, but N connections still hold N times that for the whole offer TTL.
This object bounds the total, and the share of one client address, so a
single client cannot fill the hub's memory. Pure accounting: the room core
charges and releases it by party (session) id; the hub tells it each party's address.
"""

from __future__ import annotations

from collections.abc import Callable

from .guards import subtract
from .protocol import Candidate, Description, ErrorCode, SignalingError

# Rough per-object overhead of a held value in memory, beyond its strings.
HELD_OVERHEAD_BYTES = 200


def description_bytes(description: Description) -> int:
    return len(description.sdp) + HELD_OVERHEAD_BYTES


def candidate_bytes(candidate: Candidate | None) -> int:
    if candidate is None:
        return HELD_OVERHEAD_BYTES
    return (
        len(candidate.candidate)
        + len(candidate.sdp_mid or "")
        + len(candidate.username_fragment or "")
        + HELD_OVERHEAD_BYTES
    )


class HeldBudget:
    """Bytes held per socket, per address and in total, against two caps (0: no cap).

    ``on_refused(flag, address)`` hears each refusal, with the cap's flag and the
    refused party's address, so the hub can warn its operator: a full hub refuses
    every caller.
    """

    def __init__(
        self,
        max_total: int = 0,
        max_per_address: int = 0,
        on_refused: Callable[[str, str], None] | None = None,
    ) -> None:
        self.max_total = max_total
        self.max_per_address = max_per_address
        self.on_refused = on_refused
        self.total = 0
        self._address_of: dict[str, str] = {}  # connected parties
        self._charged_to: dict[str, str] = {}  # the address each party's held bytes count against
        self._by_sid: dict[str, int] = {}
        self._by_address: dict[str, int] = {}

    def register(self, sid: str, address: str) -> None:
        self._address_of[sid] = address

    def forget(self, sid: str) -> None:
        """The party's connection is gone. What it holds stays charged (a session in its
        grace keeps its rooms) until the room core releases it."""
        self._address_of.pop(sid, None)

    def charge(self, sid: str, size: int, what: str) -> None:
        """Count ``size`` more bytes held for ``sid``, or raise ``limit`` naming the cap."""
        address = self._charged_to.get(sid) or self._address_of.get(sid, "")
        if self.max_total and self.total + size > self.max_total:
            self._refused("--max-held-bytes", address)
            raise SignalingError(
                ErrorCode.LIMIT,
                f"{what}: the hub already holds {self.total} bytes of offers and candidates "
                f"waiting for answerers, the most it keeps (--max-held-bytes "
                f"{self.max_total}); try again later",
            )
        by_address = self._by_address.get(address, 0)
        if self.max_per_address and by_address + size > self.max_per_address:
            self._refused("--max-held-bytes-per-address", address)
            raise SignalingError(
                ErrorCode.LIMIT,
                f"{what}: your address already has {by_address} bytes of offers and "
                f"candidates held, the most one address may have (--max-held-bytes-per-address "
                f"{self.max_per_address}); hang up a waiting room first",
            )
        self.total += size
        self._by_address[address] = by_address + size
        self._by_sid[sid] = self._by_sid.get(sid, 0) + size
        self._charged_to[sid] = address

    def __getstate__(self) -> dict[str, object]:
        """A snapshot holds the counts, not the hub's callback."""
        return {**self.__dict__, "on_refused": None}

    def _refused(self, flag: str, address: str) -> None:
        if self.on_refused is not None:
            self.on_refused(flag, address)

    def release(self, sid: str, size: int) -> None:
        if size <= 0:
            return
        self.total -= size
        subtract(self._by_address, self._charged_to.get(sid, ""), size)
        subtract(self._by_sid, sid, size)
        if sid not in self._by_sid:
            self._charged_to.pop(sid, None)

    def held_by(self, sid: str) -> int:
        return self._by_sid.get(sid, 0)
