"""MarkerJitterBuffer fed RTP packets directly: release on the marker, loss, reorder, late."""

from __future__ import annotations

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpTransceiver
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket

from peer.jitter import MarkerJitterBuffer, install, use_marker_buffer


def packet(seq: int, ts: int, *, marker: bool = False) -> RtpPacket:
    """A depayloaded video packet whose data names its sequence number."""
    pkt = RtpPacket(
        payload_type=96,
        marker=int(marker),
        sequence_number=seq % 65536,
        timestamp=ts,
        payload=b"x",
    )
    pkt._data = f"[{seq % 65536}]".encode()  # type: ignore[attr-defined]
    return pkt


def frame_packets(first_seq: int, ts: int, count: int) -> list[RtpPacket]:
    """The ``count`` packets of one frame, the last one marked."""
    return [packet(first_seq + i, ts, marker=i == count - 1) for i in range(count)]


def data_of(first_seq: int, count: int) -> bytes:
    return b"".join(f"[{(first_seq + i) % 65536}]".encode() for i in range(count))


def feed(buffer: JitterBuffer, packets: list[RtpPacket]) -> list[tuple[bool, JitterFrame | None]]:
    return [buffer.add(p) for p in packets]


def frames_of(results: list[tuple[bool, JitterFrame | None]]) -> list[JitterFrame]:
    return [frame for _, frame in results if frame is not None]


def test_frame_released_on_its_marker_packet_without_waiting_for_the_next() -> None:
    buffer = MarkerJitterBuffer()
    results = feed(buffer, frame_packets(100, 3000, 3))
    assert [frame for _, frame in results[:2]] == [None, None]
    pli, frame = results[2]
    assert frame is not None and not pli
    assert (frame.data, frame.timestamp) == (data_of(100, 3), 3000)

    # The stock buffer holds the same frame until the next one starts.
    stock = JitterBuffer(capacity=512, is_video=True)
    assert frames_of(feed(stock, frame_packets(100, 3000, 3))) == []
    _, held = stock.add(packet(103, 6000))
    assert held is not None and held.data == data_of(100, 3)


def test_in_order_stream_releases_every_frame_in_order() -> None:
    buffer = MarkerJitterBuffer()
    released: list[int] = []
    seq = 10
    for n in range(50):
        size = 1 + n % 4
        results = feed(buffer, frame_packets(seq, n * 3000, size))
        assert [f is not None for _, f in results] == [False] * (size - 1) + [True]
        assert not any(pli for pli, _ in results)
        frame = results[-1][1]
        assert frame is not None and frame.data == data_of(seq, size)
        released.append(frame.timestamp)
        seq += size
    assert released == [n * 3000 for n in range(50)]


def test_reordered_packets_within_a_frame() -> None:
    buffer = MarkerJitterBuffer()
    first = frame_packets(0, 0, 3)
    assert frames_of(feed(buffer, first)) and buffer.frames_skipped == 0
    p3, p4, p5, p6 = frame_packets(3, 3000, 4)
    results = feed(buffer, [p3, p6, p5])  # marker early, p4 still missing
    assert frames_of(results) == []
    pli, frame = buffer.add(p4)
    assert not pli and frame is not None
    assert frame.data == data_of(3, 4) and frame.timestamp == 3000


def test_reordered_packets_across_frames_come_out_in_order() -> None:
    buffer = MarkerJitterBuffer()
    a = frame_packets(0, 0, 2)
    b = frame_packets(2, 3000, 2)
    c = frame_packets(4, 6000, 2)
    # Frame a's first packet arrives, then all of b and c, then a's marker packet.
    results = feed(buffer, [a[0], *b, *c, a[1]])
    assert frames_of(results[:-1]) == []
    released = frames_of(results)
    # Each add releases at most one frame: the backlog drains with the next packets.
    released += frames_of(feed(buffer, frame_packets(6, 9000, 2)))
    released += frames_of(feed(buffer, frame_packets(8, 12000, 1)))
    assert [f.timestamp for f in released][:3] == [0, 3000, 6000]
    assert [f.data for f in released][:3] == [data_of(0, 2), data_of(2, 2), data_of(4, 2)]


def test_lost_middle_packet_frame_not_emitted_later_frames_flow_and_pli() -> None:
    buffer = MarkerJitterBuffer(max_wait_frames=3)
    feed(buffer, frame_packets(0, 0, 2))
    broken = frame_packets(2, 3000, 3)
    del broken[1]  # seq 3 never arrives
    assert frames_of(feed(buffer, broken)) == []

    # Complete frames pile up behind the gap; the buffer waits for a retransmission...
    results = feed(buffer, frame_packets(5, 6000, 2) + frame_packets(7, 9000, 2))
    assert frames_of(results) == [] and not any(pli for pli, _ in results)
    # ...until the third one completes: the broken frame is skipped and a PLI requested.
    results = feed(buffer, frame_packets(9, 12000, 2))
    pli, frame = results[-1]
    assert pli and frame is not None
    assert (frame.timestamp, frame.data) == (6000, data_of(5, 2))
    assert buffer.frames_skipped == 1

    # The backlog and later frames follow in order, without further PLIs.
    released = [frame]
    for n, seq in enumerate(range(11, 17, 2)):
        results = feed(buffer, frame_packets(seq, 15000 + n * 3000, 2))
        assert not any(pli for pli, _ in results)
        released += frames_of(results)
    timestamps = [f.timestamp for f in released]
    assert timestamps == sorted(timestamps) and 3000 not in timestamps
    assert timestamps[:3] == [6000, 9000, 12000]


def test_retransmitted_packet_completes_a_frame_before_the_skip() -> None:
    buffer = MarkerJitterBuffer(max_wait_frames=3)
    broken = frame_packets(0, 0, 3)
    lost = broken.pop(1)
    feed(buffer, broken + frame_packets(3, 3000, 1))
    pli, frame = buffer.add(lost)  # the NACKed packet comes back
    assert not pli and frame is not None
    assert (frame.timestamp, frame.data) == (0, data_of(0, 3))
    assert buffer.frames_skipped == 0


def test_whole_frame_lost_skips_to_a_frame_with_a_known_start() -> None:
    buffer = MarkerJitterBuffer(max_wait_frames=2)
    feed(buffer, frame_packets(0, 0, 1))
    # Frame at seq 1..2 (ts 3000) is lost entirely; seq 3..4 follows the gap, so
    # its start is unknown; seq 5.. starts after a marker packet.
    results = feed(
        buffer,
        frame_packets(3, 6000, 2) + frame_packets(5, 9000, 2) + frame_packets(7, 12000, 1),
    )
    released = frames_of(results)
    assert [f.timestamp for f in released] == [9000]
    assert any(pli for pli, _ in results)


def test_late_packet_after_its_frame_was_emitted_is_dropped() -> None:
    buffer = MarkerJitterBuffer()
    packets = frame_packets(0, 0, 2)
    feed(buffer, packets)
    assert buffer.add(packet(1, 0, marker=True)) == (False, None)  # duplicate
    assert buffer.add(packet(0, 0)) == (False, None)  # late
    _, frame = feed(buffer, frame_packets(2, 3000, 1))[0]
    assert frame is not None and frame.data == data_of(2, 1)


def test_late_packet_of_a_skipped_frame_is_dropped() -> None:
    buffer = MarkerJitterBuffer(max_wait_frames=1)
    feed(buffer, frame_packets(0, 0, 1))
    broken = frame_packets(1, 3000, 3)
    lost = broken.pop(1)
    results = feed(buffer, broken + frame_packets(4, 6000, 1))
    assert [f.timestamp for f in frames_of(results)] == [6000]
    assert buffer.add(lost) == (False, None)
    _, frame = buffer.add(packet(5, 9000, marker=True))
    assert frame is not None and frame.timestamp == 9000


def test_sequence_number_wraps_at_65535() -> None:
    buffer = MarkerJitterBuffer()
    released: list[JitterFrame] = []
    seq = 65530
    for n in range(6):
        released += frames_of(feed(buffer, frame_packets(seq, n * 3000, 3)))
        seq += 3
    assert [f.timestamp for f in released] == [n * 3000 for n in range(6)]
    assert released[2].data == b"[0][1][2]"
    assert released[1].data == b"[65533][65534][65535]"


def test_reordered_across_the_wrap() -> None:
    buffer = MarkerJitterBuffer()
    feed(buffer, frame_packets(65532, 0, 2))
    a, b, c = frame_packets(65534, 3000, 3)  # 65534, 65535, 0
    assert frames_of(feed(buffer, [a, c])) == []
    _, frame = buffer.add(b)
    assert frame is not None and frame.data == b"[65534][65535][0]"


def test_capacity_overflow_still_requests_a_pli_like_aiortc() -> None:
    buffer = MarkerJitterBuffer(capacity=16, max_wait_frames=100)
    feed(buffer, [packet(0, 0)])  # a frame whose marker never arrives
    results = feed(buffer, [packet(16, 3000)])
    assert results[0][0] is True


def test_rejects_a_bad_wait() -> None:
    with pytest.raises(ValueError, match="max_wait_frames must be >= 1, got 0"):
        MarkerJitterBuffer(max_wait_frames=0)


def buffer_of(transceiver: RTCRtpTransceiver) -> JitterBuffer:
    return transceiver.receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]


async def test_install_patches_video_receivers_of_that_pc_only() -> None:
    config = RTCConfiguration(iceServers=[])
    pc, other = RTCPeerConnection(config), RTCPeerConnection(config)
    try:
        early = pc.addTransceiver("video")  # made before install
        install(pc)
        install(pc)  # idempotent
        late = pc.addTransceiver("video")
        audio = pc.addTransceiver("audio")
        untouched = other.addTransceiver("video")

        assert isinstance(buffer_of(early), MarkerJitterBuffer)
        assert isinstance(buffer_of(late), MarkerJitterBuffer)
        assert buffer_of(early) is not buffer_of(late)
        assert type(buffer_of(audio)) is JitterBuffer
        assert type(buffer_of(untouched)) is JitterBuffer
    finally:
        await pc.close()
        await other.close()


async def test_receiver_already_receiving_keeps_its_buffer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        transceiver = pc.addTransceiver("video")
        transceiver.receiver._RTCRtpReceiver__started = True  # type: ignore[attr-defined]
        assert use_marker_buffer(transceiver.receiver) is False
        assert type(buffer_of(transceiver)) is JitterBuffer
        assert "already receiving" in caplog.text
        transceiver.receiver._RTCRtpReceiver__started = False  # type: ignore[attr-defined]
    finally:
        await pc.close()
