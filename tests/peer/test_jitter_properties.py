"""Property tests of MarkerJitterBuffer under random loss, reordering and wrap-around."""

from __future__ import annotations

from dataclasses import dataclass

from aiortc.rtp import RtpPacket
from hypothesis import given, settings
from hypothesis import strategies as st

from peer.jitter import MarkerJitterBuffer

STEP = 3000


@dataclass
class Stream:
    packets: list[RtpPacket]  # in arrival order
    frames: dict[int, bytes]  # timestamp -> whole frame data
    next_seq: int
    next_ts: int


def make_packet(seq: int, ts: int, marker: bool) -> RtpPacket:
    packet = RtpPacket(payload_type=96, marker=int(marker), sequence_number=seq, timestamp=ts)
    packet._data = f"[{seq}]".encode()  # type: ignore[attr-defined]
    return packet


@st.composite
def streams(draw: st.DrawFn, lossy: bool) -> Stream:
    sizes = draw(st.lists(st.integers(1, 6), min_size=2, max_size=40))
    first_seq = draw(st.one_of(st.integers(0, 65535), st.integers(65500, 65535)))
    sent: list[RtpPacket] = []
    frames: dict[int, bytes] = {}
    seq = first_seq
    for n, size in enumerate(sizes):
        ts = n * STEP
        packets = [make_packet((seq + i) % 65536, ts, i == size - 1) for i in range(size)]
        frames[ts] = b"".join(p._data for p in packets)  # type: ignore[attr-defined]
        sent += packets
        seq += size
    # Bounded reordering: each packet may overtake up to 7 earlier ones; the first
    # packet of the call arrives first, as aiortc's buffer anchors on it.
    shifts = draw(st.lists(st.floats(0, 7.9), min_size=len(sent), max_size=len(sent)))
    order = sorted(range(1, len(sent)), key=lambda i: i + shifts[i])
    arrival = [sent[0]] + [sent[i] for i in order]
    if lossy:
        lost = draw(st.sets(st.integers(1, len(sent) - 1), max_size=len(sent) // 4))
        arrival = [p for p in arrival if sent.index(p) not in lost]
    return Stream(arrival, frames, seq % 65536, len(sizes) * STEP)


def run(buffer: MarkerJitterBuffer, stream: Stream) -> tuple[list[tuple[int, bytes]], bool]:
    """Feed the stream, then enough whole single-packet frames to drain any backlog."""
    out: list[tuple[int, bytes]] = []
    pli_seen = False
    flush = [
        make_packet((stream.next_seq + i) % 65536, stream.next_ts + i * STEP, True)
        for i in range(len(stream.frames) + 1)
    ]
    for packet in stream.packets + flush:
        pli, frame = buffer.add(packet)
        pli_seen |= pli
        if frame is not None:
            out.append((frame.timestamp, frame.data))
    return out, pli_seen


@settings(max_examples=300, deadline=None)
@given(streams(lossy=True))
def test_emitted_frames_are_whole_and_in_order(stream: Stream) -> None:
    buffer = MarkerJitterBuffer(max_wait_frames=3)
    out, pli_seen = run(buffer, stream)
    timestamps = [ts for ts, _ in out]
    assert timestamps == sorted(set(timestamps)), "frames out of order or repeated"
    for ts, data in out:
        if ts < stream.next_ts:
            assert data == stream.frames[ts], f"frame {ts} emitted incomplete"
    if buffer.frames_skipped:
        assert pli_seen, "a skipped frame must request a PLI"


@settings(max_examples=300, deadline=None)
@given(streams(lossy=False))
def test_without_loss_every_frame_arrives(stream: Stream) -> None:
    buffer = MarkerJitterBuffer(max_wait_frames=64)
    out, pli_seen = run(buffer, stream)
    sent = sorted(stream.frames.items())
    assert out[: len(sent)] == sent
    assert not pli_seen and buffer.frames_skipped == 0
