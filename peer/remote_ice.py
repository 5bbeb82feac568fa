"""The other side's ICE candidates, applied to the right transport at the right time.

Three rules other stacks need (all found with real callers):

- End-of-candidates is held until the transport has a remote candidate to check.
  aioice fails ICE at once when end-of-candidates arrives and it has no pair yet, but
  a caller that hides its addresses behind mDNS names (Firefox by default, browsers
  without camera permission) is reached through the peer-reflexive candidate its own
  checks reveal a moment later (RFC 8445 section 7.3.1.3).
- An mDNS name (``<uuid>.local``) is resolved by aioice (multicast DNS, up to 1 s),
  in the background; a name that does not resolve costs only that candidate.
- An empty-string candidate ends candidates only for the m-section (and ICE
  generation) it names; ``null`` ends them for every transport.

Candidates that arrive before the remote description wait until it is set.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from aiortc import RTCIceCandidate, RTCIceTransport, RTCPeerConnection

from . import sdp
from .errors import SignalingError
from .protocol import EndOfCandidates, candidate_from_line

log = logging.getLogger(__name__)

HELD_END_POLL = 0.1  # seconds between looks at a transport whose end-of-candidates is held

Spawn = Callable[[Coroutine[Any, Any, None], str], None]
Remote = RTCIceCandidate | EndOfCandidates


def is_mdns(candidate: RTCIceCandidate) -> bool:
    return candidate.ip.endswith(".local")


class RemoteIce:
    """Routes remote candidates of one call's ``pc``; ``spawn`` runs background work."""

    def __init__(
        self, pc: RTCPeerConnection, room: str, spawn: Spawn, *, resolve_mdns: bool = True
    ) -> None:
        self.pc = pc
        self.room = room
        self.spawn = spawn
        self.resolve_mdns = resolve_mdns
        self.description: sdp.Description | None = None
        self.pending: list[Remote] = []
        self.signalled = 0
        self.mdns_names: list[str] = []
        self.ignored = 0
        self.ends_applied = 0
        self._resolving: dict[int, int] = {}
        self._ended: set[int] = set()
        self._closed = False

    # -- the remote description ---------------------------------------------------

    async def described(self, description: sdp.Description) -> None:
        """The remote description is set: apply its own candidates, then the waiting ones."""
        self.description = description
        for section in description.sections:
            for line in section.candidates:
                await self._candidate_line(section, line)
            if section.end_of_candidates:
                await self.add(
                    EndOfCandidates(everything=False, mid=section.mid, mline_index=section.index)
                )
        pending, self.pending = self.pending, []
        for item in pending:
            await self.add(item)

    async def _candidate_line(self, section: sdp.Section, line: str) -> None:
        try:
            candidate = candidate_from_line(line)
        except SignalingError as exc:
            log.warning("room=%s %s in %s; ignored", self.room, exc, section.describe())
            return
        candidate.sdpMid, candidate.sdpMLineIndex = section.mid, section.index
        await self.add(candidate)

    # -- routing --------------------------------------------------------------------

    def _transports(self) -> list[RTCIceTransport]:
        seen: dict[int, RTCIceTransport] = {}
        for t in self.pc.getTransceivers():
            ice = t.receiver.transport.transport
            seen.setdefault(id(ice), ice)
        sctp = self.pc.sctp
        if sctp is not None:
            seen.setdefault(id(sctp.transport.transport), sctp.transport.transport)
        return list(seen.values())

    def _transport_for_mid(self, mid: str | None) -> RTCIceTransport | None:
        for t in self.pc.getTransceivers():
            if mid is not None and t.mid == mid:
                return t.receiver.transport.transport
        sctp = self.pc.sctp
        if sctp is not None and mid is not None and sctp.mid == mid:
            return sctp.transport.transport
        return None

    def _route(self, mid: str | None, index: int | None) -> RTCIceTransport | None:
        assert self.description is not None
        section = self.description.section_for(mid, index)
        if section is None:
            transports = self._transports()  # legacy: no mid, no index -> the first one
            return transports[0] if transports and mid is None and index is None else None
        return self._section_transport(section)

    def _section_transport(self, section: sdp.Section) -> RTCIceTransport | None:
        """The transport of ``section``; for a rejected m-section of the BUNDLE group, the
        group's transport, which its candidates were gathered for (RFC 8843)."""
        transport = self._transport_for_mid(section.mid)
        if transport is not None or self.description is None:
            return transport
        bundle = self.description.bundle
        if section.mid not in bundle:
            return None
        for mid in bundle:
            transport = self._transport_for_mid(mid)
            if transport is not None:
                return transport
        return None

    # -- adding -----------------------------------------------------------------------

    async def add(self, item: Remote) -> None:
        """Apply one remote candidate or end-of-candidates (or keep it for later)."""
        if self._closed:
            return
        if self.description is None:
            self.pending.append(item)
            return
        if isinstance(item, EndOfCandidates):
            self._end(item)
            return
        transport = self._route(item.sdpMid, item.sdpMLineIndex)
        if transport is None:
            self.ignored += 1
            log.info(
                "room=%s candidate for mid %r / m-line %s: no such m-section in use; ignored",
                self.room,
                item.sdpMid,
                item.sdpMLineIndex,
            )
            return
        self.signalled += 1
        if is_mdns(item):
            self.mdns_names.append(item.ip)
            if not self.resolve_mdns:
                log.info(
                    "room=%s mDNS candidate %s not resolved (resolution off)", self.room, item.ip
                )
                return
            key = id(transport)
            self._resolving[key] = self._resolving.get(key, 0) + 1
            self.spawn(self._add_mdns(transport, item), "mdns-candidate")
        else:
            await self._add_to(transport, item)

    async def _add_mdns(self, transport: RTCIceTransport, candidate: RTCIceCandidate) -> None:
        try:
            await self._add_to(transport, candidate)
        finally:
            self._resolving[id(transport)] -= 1

    async def _add_to(self, transport: RTCIceTransport, candidate: RTCIceCandidate | None) -> None:
        if self._closed or transport.state == "closed":
            return
        try:
            await transport.addRemoteCandidate(candidate)
        except (ValueError, OSError) as exc:  # after end-of-candidates, or mDNS socket refused
            log.info("room=%s remote candidate %s not used: %s", self.room, candidate, exc)

    def _end(self, end: EndOfCandidates) -> None:
        if end.everything:
            targets = self._transports()
        else:
            assert self.description is not None
            section = self.description.section_for(end.mid, end.mline_index)
            if section is None:
                log.info("room=%s %s: no such m-section; ignored", self.room, end.describe())
                return
            ufrag = section.ufrag or self.description.session_ufrag
            if end.ufrag is not None and ufrag is not None and end.ufrag != ufrag:
                log.info(
                    "room=%s %s of ICE generation %r, not the current %r; ignored",
                    self.room,
                    end.describe(),
                    end.ufrag,
                    ufrag,
                )
                return
            transport = self._section_transport(section)
            targets = [] if transport is None else [transport]
        for transport in targets:
            if id(transport) not in self._ended:
                self._ended.add(id(transport))
                self.spawn(self._end_when_checkable(transport), "end-of-candidates")

    async def _end_when_checkable(self, transport: RTCIceTransport) -> None:
        """Signal end-of-candidates once ``transport`` has a candidate to check."""
        held = False
        while not self._closed and transport.state not in ("completed", "closed", "failed"):
            if not self._resolving.get(id(transport)) and transport.getRemoteCandidates():
                break
            if not held:
                held = True
                log.info(
                    "room=%s end-of-candidates held: no usable remote candidate yet, "
                    "waiting for checks from the other side",
                    self.room,
                )
            await asyncio.sleep(HELD_END_POLL)
        if not self._closed and transport.state not in ("closed", "failed"):
            await self._add_to(transport, None)
            self.ends_applied += 1

    def learned(self) -> int:
        """Remote candidates aioice knows, peer-reflexive ones included."""
        return sum(len(t.getRemoteCandidates()) for t in self._transports())

    def summary(self) -> str:
        """One phrase for error messages: what the other side gave us to check."""
        parts = [f"{self.signalled} remote candidate(s) signalled"]
        if self.mdns_names:
            parts.append(f"{len(self.mdns_names)} of them mDNS names")
        parts.append(f"{self.learned()} known to ICE")
        return ", ".join(parts)

    def close(self) -> None:
        self._closed = True
