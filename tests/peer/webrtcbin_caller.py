"""A GStreamer ``webrtcbin`` caller (Debian's GStreamer 1.22), driven over JSON lines.

Run by the tests with the system ``python3`` (PyGObject and GStreamer come from Debian
packages, not from the project's virtualenv). It sends a VP8 test pattern, counts the
video frames it decodes, and speaks on stdout / listens on stdin:

- out ``{"offer": SDP}``, ``{"candidate": {"candidate", "sdpMLineIndex"}}``,
  ``{"received": N}`` (after 1, 10 and 30 decoded frames), ``{"error": TEXT}``
- in ``{"answer": SDP}``, ``{"candidate": {...} or null}``
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstWebRTC", "1.0")
gi.require_version("GstSdp", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

PIPELINE = (
    "webrtcbin name=bin bundle-policy=max-bundle "
    "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 "
    "! videoconvert ! vp8enc deadline=1 ! rtpvp8pay ! "
    "application/x-rtp,media=video,encoding-name=VP8,payload=96 ! bin."
)
REPORT_AT = (1, 10, 30)


def say(message: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def once(fn: Callable[..., None], *args: Any) -> bool:
    """A GLib source callback that runs ``fn`` one time (False: remove the source)."""
    fn(*args)
    return False


class Caller:
    def __init__(self) -> None:
        self.loop = GLib.MainLoop()
        self.pipe = Gst.parse_launch(PIPELINE)
        self.bin = self.pipe.get_by_name("bin")
        self.received = 0
        self.bin.connect("on-negotiation-needed", self.on_negotiation_needed)
        self.bin.connect("on-ice-candidate", self.on_ice_candidate)
        self.bin.connect("pad-added", self.on_pad_added)
        bus = self.pipe.get_bus()
        bus.add_signal_watch()
        bus.connect("message::error", self.on_error)
        GLib.io_add_watch(sys.stdin.fileno(), GLib.IO_IN | GLib.IO_HUP, self.on_stdin)

    def run(self) -> None:
        self.pipe.set_state(Gst.State.PLAYING)
        try:
            self.loop.run()
        finally:
            self.pipe.set_state(Gst.State.NULL)

    def on_error(self, _bus: object, message: Gst.Message) -> None:
        error, _debug = message.parse_error()
        say({"error": str(error)})

    def on_negotiation_needed(self, element: Gst.Element) -> None:
        promise = Gst.Promise.new_with_change_func(self.on_offer_created, element, None)
        element.emit("create-offer", None, promise)

    def on_offer_created(self, promise: Gst.Promise, element: Gst.Element, _: object) -> None:
        promise.wait()
        reply = promise.get_reply()
        offer = reply.get_value("offer") if reply is not None else None
        if offer is None:  # caps not known yet: ask again once they are
            GLib.timeout_add(100, once, self.on_negotiation_needed, element)
            return
        element.emit("set-local-description", offer, Gst.Promise.new())
        say({"offer": offer.sdp.as_text()})

    def on_ice_candidate(self, _element: Gst.Element, index: int, candidate: str) -> None:
        say({"candidate": {"candidate": candidate, "sdpMLineIndex": index}})

    def on_pad_added(self, _element: Gst.Element, pad: Gst.Pad) -> None:
        if pad.direction != Gst.PadDirection.SRC:
            return
        decode = Gst.ElementFactory.make("decodebin")
        decode.connect("pad-added", self.on_decoded_pad)
        self.pipe.add(decode)
        decode.sync_state_with_parent()
        pad.link(decode.get_static_pad("sink"))

    def on_decoded_pad(self, _decode: Gst.Element, pad: Gst.Pad) -> None:
        sink = Gst.ElementFactory.make("fakesink")
        sink.set_property("signal-handoffs", True)
        sink.set_property("sync", False)
        sink.connect("handoff", self.on_frame)
        self.pipe.add(sink)
        sink.sync_state_with_parent()
        pad.link(sink.get_static_pad("sink"))

    def on_frame(self, *_args: object) -> None:
        self.received += 1
        if self.received in REPORT_AT:
            count = self.received
            GLib.idle_add(once, say, {"received": count})

    def on_stdin(self, fd: int, condition: int) -> bool:
        line = sys.stdin.readline()
        if not line:
            self.loop.quit()
            return False
        message = json.loads(line)
        if "answer" in message:
            _, parsed = GstSdp.SDPMessage.new_from_text(message["answer"])
            kind = GstWebRTC.WebRTCSDPType.ANSWER
            answer = GstWebRTC.WebRTCSessionDescription.new(kind, parsed)
            self.bin.emit("set-remote-description", answer, Gst.Promise.new())
        elif message.get("candidate"):
            c = message["candidate"]
            self.bin.emit("add-ice-candidate", c.get("sdpMLineIndex") or 0, c["candidate"])
        return True


if __name__ == "__main__":
    Gst.init(None)
    Caller().run()
