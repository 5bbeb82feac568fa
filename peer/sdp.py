"""Text-level edits of session descriptions, kept apart from aiortc (pure, no I/O).

aiortc cannot take some descriptions other stacks send: an m-section with no codec it
implements fails the whole ``setRemoteDescription``, a rejected m-section (port 0) is
not understood, and an ``a=end-of-candidates`` inside the description ends ICE at once.
So the peer splits a remote description into its m-sections, takes the candidate lines
and end-of-candidates markers out (they are applied like trickled ones), hands aiortc
only the m-sections it can use, and puts the rejected ones back into its answer with
port 0 (RFC 3264 section 6; RFC 8829 section 5.3.1), at their place and with their mid.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

CRLF = "\r\n"
CANDIDATE_ATTR = "a=candidate:"
END_OF_CANDIDATES = "a=end-of-candidates"
BUNDLE_PREFIX = "a=group:BUNDLE"


@dataclass
class Section:
    """One m-section of a description: ``index`` is its place in the original."""

    index: int
    lines: list[str]
    candidates: list[str] = field(default_factory=list)
    end_of_candidates: bool = False

    @property
    def kind(self) -> str:
        return self.lines[0][2:].split(" ", 1)[0]

    @property
    def port(self) -> int:
        parts = self.lines[0].split()
        try:
            return int(parts[1].split("/")[0])
        except (IndexError, ValueError):
            return 0

    @property
    def formats(self) -> list[str]:
        return self.lines[0].split()[3:]

    @property
    def mid(self) -> str | None:
        return self.attribute("mid")

    @property
    def ufrag(self) -> str | None:
        return self.attribute("ice-ufrag")

    def attribute(self, name: str) -> str | None:
        prefix = f"a={name}:"
        for line in self.lines:
            if line.startswith(prefix):
                return line[len(prefix) :].strip()
        return None

    def describe(self) -> str:
        """``m-section 1 (video, mid '1')``: how log lines and errors name it."""
        return f"m-section {self.index} ({self.kind}, mid {self.mid!r})"


@dataclass
class Description:
    """A description split into its session part and its m-sections."""

    session: list[str]
    sections: list[Section]

    def section_for(self, mid: str | None, mline_index: int | None) -> Section | None:
        """The m-section a candidate names by ``sdpMid`` or, failing that, by index."""
        if mid is not None:
            for s in self.sections:
                if s.mid == mid:
                    return s
            return None
        if mline_index is not None and 0 <= mline_index < len(self.sections):
            return self.sections[mline_index]
        return None

    @property
    def bundle(self) -> list[str]:
        for line in self.session:
            if line.startswith(BUNDLE_PREFIX):
                return line[len(BUNDLE_PREFIX) :].split()
        return []

    @property
    def session_ufrag(self) -> str | None:
        for line in self.session:
            if line.startswith("a=ice-ufrag:"):
                return line[len("a=ice-ufrag:") :].strip()
        return None


def split(sdp: str) -> Description:
    """Split ``sdp``; candidate lines and end-of-candidates go to each ``Section``."""
    session: list[str] = []
    sections: list[Section] = []
    for line in sdp.splitlines():
        line = line.rstrip()
        if not line:
            continue
        if line.startswith("m="):
            sections.append(Section(index=len(sections), lines=[line]))
        elif not sections:
            session.append(line)
        elif line.startswith(CANDIDATE_ATTR):
            sections[-1].candidates.append(line[2:])
        elif line == END_OF_CANDIDATES:
            sections[-1].end_of_candidates = True
        else:
            sections[-1].lines.append(line)
    return Description(session, sections)


def join(description: Description, keep: Iterable[Section], *, candidates: bool = False) -> str:
    """The description with only the ``keep`` sections and a BUNDLE group to match.

    ``candidates`` puts each section's candidate lines and end-of-candidates back.
    """
    kept = list(keep)
    mids = {s.mid for s in kept}
    lines: list[str] = []
    for line in description.session:
        if line.startswith(BUNDLE_PREFIX):
            items = [m for m in line[len(BUNDLE_PREFIX) :].split() if m in mids]
            if not items:
                continue
            line = " ".join([BUNDLE_PREFIX, *items])
        lines.append(line)
    for s in kept:
        lines.extend(s.lines)
        if candidates:
            lines.extend("a=" + c for c in s.candidates)
            if s.end_of_candidates:
                lines.append(END_OF_CANDIDATES)
    return CRLF.join(lines) + CRLF


def prefer_payloads(section: Section, first: Sequence[str]) -> None:
    """Move the payload types ``first`` to the front, in that order.

    Both the m-line's format list and the ``a=rtpmap`` lines are reordered: the format
    list is the preference order (RFC 3264 section 5.1), and aiortc reads its codec
    list in ``a=rtpmap`` order.
    """
    head = section.lines[0].split()
    formats = head[3:]
    ordered = [f for f in first if f in formats] + [f for f in formats if f not in first]
    section.lines[0] = " ".join(head[:3] + ordered)
    rank = {pt: i for i, pt in enumerate(ordered)}
    at = [i for i, line in enumerate(section.lines) if line.startswith("a=rtpmap:")]

    def payload(line: str) -> int:
        return rank.get(line[len("a=rtpmap:") :].split(" ", 1)[0], len(rank))

    for i, line in zip(at, sorted((section.lines[i] for i in at), key=payload), strict=True):
        section.lines[i] = line


def rejected(section: Section) -> list[str]:
    """The answer's lines for a rejected m-section: port 0, its formats, its mid."""
    head = section.lines[0].split()
    lines = [" ".join([head[0], "0", *head[2:]]), "c=IN IP4 0.0.0.0"]
    if section.mid is not None:
        lines.append(f"a=mid:{section.mid}")
    lines.append("a=inactive")
    return lines


def with_rejected(answer_sdp: str, offer: Description, rejects: Sequence[Section]) -> str:
    """Put rejected m-sections into an answer made for the other ones, at their index.

    ``answer_sdp`` has one m-section per offered one that is not in ``rejects``, in
    offer order (as aiortc makes it).
    """
    if not rejects:
        return answer_sdp
    answer = split(answer_sdp)
    produced = iter(answer.sections)
    rejected_at = {s.index: s for s in rejects}
    lines = list(answer.session)
    for s in offer.sections:
        if s.index in rejected_at:
            lines.extend(rejected(s))
            continue
        made = next(produced)
        lines.extend(made.lines)
        lines.extend("a=" + c for c in made.candidates)
        if made.end_of_candidates:
            lines.append(END_OF_CANDIDATES)
    return CRLF.join(lines) + CRLF
