"""Peer settings: one frozen ``PeerConfig`` built from flags with ``PEER_*`` fallbacks."""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from signaling.config import ConfigError, Sources, parse_ice_server
from signaling.protocol import NEW_ROOM, ROOM_PATTERN, new_private_room, parse_name

from .errors import UsageError
from .testsrc import COLS, MIN_CELL, ROWS, check_size

Role = Literal["caller", "answerer"]
CODECS = ("vp8", "h264")
RECORD_FORMATS = (".mp4", ".webm", ".mkv")
ROLES = ("caller", "answerer")
VIDEO_KINDS = "testsrc, webcam, webcam:N, webcam:/dev/videoN, none or a video file"
AUDIO_KINDS = "tone, none or an audio file"
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off", "")
MAX_SIZE = (3840, 2160)  # 4K UHD, the largest --size the peer sends
MIN_SIZE = (COLS * MIN_CELL, ROWS * MIN_CELL + 2)  # the testsrc stamp's smallest readable cells
IPV6_NETLOC = re.compile(r"\[[0-9A-Fa-f:.]+\](?::[^:]*)?")


@dataclass(frozen=True)
class PeerConfig:
    server: str = "http://127.0.0.1:8080"
    room: str = ""
    role: Role = "caller"
    name: str = ""  # empty: python-caller or python-answerer, by role
    token: str | None = field(default=None, repr=False)
    video: str = "testsrc"
    audio: str = "none"
    size: tuple[int, int] = (640, 480)
    fps: float = 30.0
    codec: str | None = None  # caller: aiortc's order (VP8 first); answerer: the offer's
    duration: float | None = None
    timeout: float = 30.0
    show: bool = False
    record: Path | None = None
    stats_json: str | None = None
    ice_servers: tuple[dict[str, Any], ...] | None = None
    relay_only: bool = False
    chat: bool = False
    # resolve the other side's ``<uuid>.local`` candidates by multicast DNS (224.0.0.251)
    mdns: bool = True
    private_room: bool = False  # --room new: the room was generated here
    verbose: int = 0

    def __post_init__(self) -> None:
        # by role, so two Python peers in one room tell each other apart in chat and lobby
        if not self.name:
            object.__setattr__(self, "name", f"python-{self.role}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="p2pcall-peer",
        description="Make one WebRTC call through a p2pcall hub, as caller or answerer. "
        "Exit codes: 0 call completed, 2 usage, 3 signaling failure, 4 media/ICE failure "
        "or timeout.",
    )
    add = p.add_argument
    add(
        "--server",
        help="hub URL, scheme://host[:port] with http or https and no path "
        "(env PEER_SERVER; default http://127.0.0.1:8080)",
    )
    add(
        "--room",
        help="room name, 1-64 of A-Z a-z 0-9 _ -, or `new` for a fresh private room whose "
        "answer link is printed (env PEER_ROOM; required)",
    )
    add("--role", help="caller or answerer (env PEER_ROLE; required)")
    add(
        "--name",
        help="display name shown to others (env PEER_NAME; default python-caller or "
        "python-answerer, by --role)",
    )
    add("--token", help="hub access token (env PEER_TOKEN; default none)")
    add(
        "--video",
        help=f"video source: {VIDEO_KINDS}; a file is looped at its own frame rate, and a file "
        "or webcam picture is scaled to --size (env PEER_VIDEO; default testsrc)",
    )
    add("--audio", help=f"audio source: {AUDIO_KINDS} (env PEER_AUDIO; default none)")
    add(
        "--size",
        help="video size WxH sent; a webcam or video file is scaled to it, stretched when its "
        "aspect ratio differs (env PEER_SIZE; default 640x480)",
    )
    add("--fps", help="frames per second sent (env PEER_FPS; default 30)")
    add(
        "--codec",
        help="video codec to put first, vp8 or h264: the caller offers it first, the answerer "
        "answers with it when the offer has it (env PEER_CODEC; default: the caller offers "
        "vp8 first, the answerer follows the offer)",
    )
    add("--duration", help="hang up S seconds after connecting (env PEER_DURATION; default never)")
    add("--timeout", help="fail if not connected after S seconds (env PEER_TIMEOUT; default 30)")
    add("--show", action="store_true", default=None, help="show remote video (env PEER_SHOW)")
    add("--record", help="record remote media to .mp4/.webm/.mkv (env PEER_RECORD; default off)")
    add(
        "--stats-json",
        help="write call stats at exit to PATH, or - for stdout (env PEER_STATS_JSON)",
    )
    add(
        "--ice-server",
        action="append",
        help="STUN/TURN URL, repeatable, turn:USER:SECRET@HOST:PORT; overrides the hub's list "
        "(env PEER_ICE_SERVERS, space-separated; default: the hub's)",
    )
    add(
        "--relay-only",
        action="store_true",
        default=None,
        help="connect only through a TURN relay, to check a TURN setup (env PEER_RELAY_ONLY)",
    )
    add(
        "--chat", action="store_true", default=None, help="send stdin lines as chat (env PEER_CHAT)"
    )
    add(
        "--no-mdns",
        action="store_true",
        default=None,
        help="do not resolve the other side's <uuid>.local candidates by multicast DNS; they "
        "are dropped and the call relies on its other candidates (env PEER_NO_MDNS)",
    )
    add("-v", "--verbose", action="count", default=None, help="more logging; -vv for debug")
    return p


def _number(label: str, text: str, *, zero: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{label}: expected a number, got {text!r}") from None
    if not value == value or value < 0 or (value == 0 and not zero) or value == float("inf"):
        raise UsageError(f"{label}: must be a number {'>= 0' if zero else '> 0'}, got {text!r}")
    return value


def _switch(src: Sources, dest: str) -> bool | None:
    """A ``store_true`` flag: on when given, else its variable read as yes or no."""
    if getattr(src.args, dest):
        return True
    if (given := src.one(dest)) is None:
        return None
    if given.value.lower() in TRUE:
        return True
    if given.value.lower() in FALSE:
        return False
    raise UsageError(
        f"{given.label}: expected one of {', '.join(TRUE + FALSE[:-1])}, got {given.value!r}"
    )


def parse_size(text: str, label: str = "--size") -> tuple[int, int]:
    """``WxH`` as ``(width, height)``: even, at most ``MAX_SIZE``, big enough for the stamp.

    Raises :class:`UsageError` naming ``label``: not ``WxH``, out of range (the range is
    given), odd, or too small for the testsrc stamp (``peer.testsrc.check_size``).
    """
    m = re.fullmatch(r"(\d+)[xX](\d+)", text.strip())
    if not m:
        raise UsageError(f"{label}: expected WxH such as 640x480, got {text!r}")
    width, height = int(m.group(1)), int(m.group(2))
    if width > MAX_SIZE[0] or height > MAX_SIZE[1]:
        raise UsageError(
            f"{label}: {text!r} is too large; width and height are even numbers from "
            f"{MIN_SIZE[0]}x{MIN_SIZE[1]} up to {MAX_SIZE[0]}x{MAX_SIZE[1]}"
        )
    try:
        check_size(width, height)
    except ValueError as exc:
        raise UsageError(f"{label}: {exc}") from None
    return width, height


def parse_server(text: str, label: str = "--server") -> str:
    """``--server``: ``http[s]://host[:port]``, returned without a trailing ``/``.

    The Socket.IO client always connects to ``/socket.io/`` at the URL's root and
    drops any path, and the hub serves only at its root, so a path would be silently
    ignored; a query string would ride along on every Engine.IO request and into the
    printed answer link, and a fragment means nothing here. Each is refused with a
    :class:`UsageError` that says what was found and what is accepted, as is a host
    ``urlsplit`` cannot read (an unclosed ``[`` of an IPv6 literal).
    """
    accepted = "use scheme://host[:port] such as http://127.0.0.1:8080"
    if not re.fullmatch(r"https?://[^/?#\s]+\S*", text):
        raise UsageError(f"{label}: expected an http:// or https:// URL, got {text!r}; {accepted}")
    try:
        parts = urlsplit(text)
    except ValueError:  # an unclosed or stray bracket: "Invalid IPv6 URL"
        parts = None
    # urlsplit also lets text after "]" pass (http://[::1]x:80); only :PORT may follow
    if parts is None or ("[" in parts.netloc and not IPV6_NETLOC.fullmatch(parts.netloc)):
        raise UsageError(
            f"{label}: {text!r} has a malformed [IPv6] host; {accepted} or http://[::1]:8080"
        )
    if parts.path not in ("", "/"):
        found = f"a path ({parts.path!r})"
    elif "?" in text:
        found = f"a query string ({parts.query!r})"
    elif "#" in text:
        found = f"a fragment ({parts.fragment!r})"
    elif not parts.hostname:
        found = "no host"
    elif parts.netloc.endswith(":"):
        found = "an empty port"  # urlsplit reads "host:" as no port at all
    else:
        try:
            parts.port  # noqa: B018  urlsplit checks the port only when it is read
        except ValueError:
            found = "a bad port"
        else:
            return f"{parts.scheme}://{parts.netloc}"
    raise UsageError(f"{label}: {text!r} has {found}; {accepted}")


def check_video(spec: str, label: str = "--video") -> str:
    if spec in ("testsrc", "none", "webcam"):
        return spec
    if spec.startswith("webcam:") and spec != "webcam:":
        return spec
    if Path(spec).is_file():
        return spec
    raise UsageError(f"{label}: {spec!r} is neither a source nor a file; use {VIDEO_KINDS}")


def check_audio(spec: str, label: str = "--audio") -> str:
    if spec in ("tone", "none") or Path(spec).is_file():
        return spec
    raise UsageError(f"{label}: {spec!r} is neither a source nor a file; use {AUDIO_KINDS}")


def config_from_args(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> PeerConfig:
    """Flags win over ``PEER_*`` variables, which win over defaults.

    A bad value raises :class:`UsageError` naming what gave it: ``--fps: ...`` or
    ``PEER_FPS (--fps): ...`` (``signaling.config.Given``, shared with the hub).
    """
    env = os.environ if environ is None else environ
    src = Sources(build_parser().parse_args(argv), env, "PEER_")
    kw: dict[str, Any] = {}
    if (server := src.one("server")) is not None:
        kw["server"] = parse_server(server.value, server.label)
    if (room := src.one("room")) is None:
        raise UsageError("--room: required (a name of 1-64 letters, digits, _ or -)")
    if room.value == NEW_ROOM:
        kw["private_room"] = True
        kw["room"] = new_private_room()
    elif not ROOM_PATTERN.fullmatch(room.value):
        raise UsageError(f"{room.label}: {room.value!r} is malformed; use 1-64 of A-Z a-z 0-9 _ -")
    else:
        kw["room"] = room.value
    if (role := src.one("role")) is None:
        raise UsageError("--role: expected caller or answerer, missing")
    if role.value not in ROLES:
        raise UsageError(f"{role.label}: expected caller or answerer, got {role.value!r}")
    if kw.get("private_room") and role.value != "caller":
        raise UsageError("--room new: only a caller makes a new room; the answerer opens its link")
    kw["role"] = role.value
    if (name := src.one("name")) is not None:
        kw["name"] = check_name(name.value, name.label)
    if (token := src.one("token")) is not None:
        kw["token"] = token.value or None
    if (video := src.one("video")) is not None:
        kw["video"] = check_video(video.value, video.label)
    if (audio := src.one("audio")) is not None:
        kw["audio"] = check_audio(audio.value, audio.label)
    if (size := src.one("size")) is not None:
        kw["size"] = parse_size(size.value, size.label)
    if (fps := src.one("fps")) is not None:
        kw["fps"] = _number(fps.label, fps.value)
        if kw["fps"] > 60:
            raise UsageError(f"{fps.label}: at most 60, got {fps.value!r}")
    if (codec := src.one("codec")) is not None:
        if codec.value.lower() not in CODECS:
            raise UsageError(f"{codec.label}: expected vp8 or h264, got {codec.value!r}")
        kw["codec"] = codec.value.lower()
    if (duration := src.one("duration")) is not None:
        kw["duration"] = _number(duration.label, duration.value)
    if (timeout := src.one("timeout")) is not None:
        kw["timeout"] = _number(timeout.label, timeout.value)
    if (show := _switch(src, "show")) is not None:
        if show:
            check_display(env, "--show" if src.args.show else "PEER_SHOW (--show)")
        kw["show"] = show
    if (record := src.one("record")) is not None:
        try:
            kw["record"] = check_record_path(record.value, record.label)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if (stats := src.one("stats_json")) is not None:
        if stats.value != "-" and not Path(stats.value).parent.is_dir():
            raise UsageError(f"{stats.label}: folder of {stats.value!r} does not exist")
        kw["stats_json"] = stats.value
    if (urls := src.many("ice_server", "ICE_SERVERS")) is not None:
        # an empty PEER_ICE_SERVERS still overrides the hub's list: no STUN/TURN at all
        try:
            kw["ice_servers"] = tuple(parse_ice_server(u, urls.label) for u in urls.value)
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
        for server in kw["ice_servers"]:
            check_aiortc_ice_host(server["urls"][0], urls.label)
    if (relay_only := _switch(src, "relay_only")) is not None:
        kw["relay_only"] = relay_only
    if (chat := _switch(src, "chat")) is not None:
        kw["chat"] = chat
    if (no_mdns := _switch(src, "no_mdns")) is not None:
        kw["mdns"] = not no_mdns
    if src.args.verbose is not None:  # -v counts; PEER_VERBOSE is text
        kw["verbose"] = src.args.verbose
    elif (verbose := src.one("verbose")) is not None:
        kw["verbose"] = int(_number(verbose.label, verbose.value, zero=True))
    return PeerConfig(**kw)


def check_name(name: str, label: str = "--name") -> str:
    """``name`` if the hub takes it: :func:`signaling.protocol.parse_name`, the hub's rule.

    Checked here so that a bad name is a usage error (exit 2) before anything connects,
    not a refusal from the hub; the bad value is quoted escaped (``'a\\x07b'``).
    """
    if parse_name({"name": name}) is None:
        raise UsageError(
            f"{label}: must be 1-64 characters with no control, surrogate, private-use, "
            f"unassigned or bidi override/isolate character (U+202A-U+202E, U+2066-U+2069), "
            f"got {name!r}"
        )
    return name


def check_display(env: Mapping[str, str], label: str = "--show") -> None:
    """Refuse ``--show`` unless X11's ``DISPLAY`` is set, before anything connects.

    The installed OpenCV's Qt has only its X11 (xcb) platform plugin: with only
    ``WAYLAND_DISPLAY`` it aborts the process (SIGABRT) once the offer is sent. A
    Wayland desktop sets ``DISPLAY`` through XWayland, so that is what is required.
    """
    if not env.get("DISPLAY"):
        raise UsageError(
            f"{label} needs X11's DISPLAY, which is not set; the video window is an X11 "
            "window (a Wayland session provides DISPLAY through XWayland)"
        )


def check_aiortc_ice_host(url: str, label: str = "--ice-server") -> str:
    """``url`` (credentials already split off) unless its host is an ``[IPv6]`` literal.

    RFC 7064/7065 and browsers take ``stun:[::1]:3478``, but aiortc's ICE agent does
    not: the call would fail with ``ValueError: malformed uri`` once it gathers. So it
    is a :class:`UsageError` here, before anything connects.
    """
    _, _, address = url.partition(":")
    if address.startswith("["):
        raise UsageError(
            f"{label}: {url!r} has an IPv6 literal host; IPv6 literals are not supported "
            "by aiortc's ICE agent, use a hostname or an IPv4 address"
        )
    return url


def check_record_path(path: str, label: str = "--record") -> Path:
    """``--record`` must name an mp4, webm or mkv file in an existing folder."""
    target = Path(path)
    if target.suffix.lower() not in RECORD_FORMATS:
        raise ValueError(
            f"{label}: {path!r} has no supported extension; use one of " + ", ".join(RECORD_FORMATS)
        )
    if not target.parent.is_dir():
        raise ValueError(f"{label}: folder {str(target.parent)!r} does not exist")
    return target
