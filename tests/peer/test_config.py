"""CLI settings: flags, PEER_* fallbacks, and a clear error naming the bad flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from peer.cli import main
from peer.config import PeerConfig, build_parser, config_from_args
from peer.errors import UsageError

BASE = ["--room", "r1", "--role", "caller"]


def test_defaults() -> None:
    cfg = config_from_args(BASE, {})
    assert cfg == PeerConfig(room="r1", role="caller")
    assert cfg.timeout == 30.0 and cfg.size == (640, 480) and cfg.video == "testsrc"


@pytest.mark.parametrize("role", ["caller", "answerer"])
def test_default_name_follows_the_role(role: str) -> None:
    assert config_from_args(["--room", "r1", "--role", role], {}).name == f"python-{role}"
    assert config_from_args(["--room", "r1", "--role", role, "--name", "ann"], {}).name == "ann"
    assert config_from_args(["--room", "r1", "--role", role], {"PEER_NAME": "bo"}).name == "bo"
    assert PeerConfig(room="r1", role="answerer").name == "python-answerer"


def test_no_mdns_flag_and_env() -> None:
    assert config_from_args(BASE, {}).mdns
    assert not config_from_args([*BASE, "--no-mdns"], {}).mdns
    assert not config_from_args(BASE, {"PEER_NO_MDNS": "1"}).mdns
    assert config_from_args(BASE, {"PEER_NO_MDNS": "0"}).mdns
    with pytest.raises(UsageError, match="PEER_NO_MDNS"):
        config_from_args(BASE, {"PEER_NO_MDNS": "maybe"})


def test_env_fallbacks_and_flag_precedence(tmp_path: Path) -> None:
    env = {
        "PEER_SERVER": "http://10.0.0.1:9",
        "PEER_ROOM": "envroom",
        "PEER_ROLE": "answerer",
        "PEER_SIZE": "320x240",
        "PEER_FPS": "15",
        "PEER_CODEC": "H264",
        "PEER_DURATION": "5",
        "PEER_TIMEOUT": "7",
        "PEER_SHOW": "1",
        "DISPLAY": ":99",
        "PEER_CHAT": "yes",
        "PEER_RECORD": str(tmp_path / "x.webm"),
        "PEER_ICE_SERVERS": "stun:127.0.0.1:3478 turn:u:p@127.0.0.1:3478",
        "PEER_TOKEN": "tok",
    }
    cfg = config_from_args([], env)
    assert (cfg.server, cfg.room, cfg.role) == ("http://10.0.0.1:9", "envroom", "answerer")
    assert (cfg.size, cfg.fps, cfg.codec, cfg.duration, cfg.timeout) == (
        (320, 240),
        15.0,
        "h264",
        5.0,
        7.0,
    )
    assert cfg.show and cfg.chat and cfg.token == "tok"
    assert cfg.record == tmp_path / "x.webm"
    assert cfg.ice_servers == (
        {"urls": ["stun:127.0.0.1:3478"]},
        {"urls": ["turn:127.0.0.1:3478"], "username": "u", "credential": "p"},
    )
    assert config_from_args(["--room", "flag", "--fps", "30"], env).room == "flag"
    assert "tok" not in repr(cfg)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--role", "caller"], "--room: required"),
        (["--room", "bad room", "--role", "caller"], "--room"),
        (["--room", "r"], "--role: expected caller or answerer, missing"),
        ([*BASE, "--size", "640"], "--size: expected WxH"),
        ([*BASE, "--size", "100x100"], "too small"),
        ([*BASE, "--fps", "0"], "--fps: must be a number > 0"),
        ([*BASE, "--fps", "abc"], "--fps: expected a number"),
        ([*BASE, "--codec", "av1"], "--codec: expected vp8 or h264"),
        ([*BASE, "--video", "/no/such/file.mp4"], "--video"),
        ([*BASE, "--audio", "beep"], "--audio"),
        ([*BASE, "--record", "out.avi"], "--record"),
        ([*BASE, "--timeout", "-1"], "--timeout"),
        ([*BASE, "--server", "ftp://x"], "--server"),
        ([*BASE, "--ice-server", "http://x"], "--ice-server"),
    ],
)
def test_bad_values_name_the_flag(args: list[str], needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        config_from_args(args, {})


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("https://hub.example/", "https://hub.example"),
        ("http://[::1]:9000", "http://[::1]:9000"),
    ],
)
def test_server_is_scheme_host_port(url: str, kept: str) -> None:
    assert config_from_args([*BASE, "--server", url], {}).server == kept


@pytest.mark.parametrize(
    ("url", "found"),
    [
        # the Socket.IO client connects to /socket.io/ at the root whatever the path says
        ("http://127.0.0.1:8080/foo", "a path ('/foo')"),
        ("http://127.0.0.1:8080/socket.io/", "a path ('/socket.io/')"),
        ("http://127.0.0.1:8080?room=x", "a query string ('room=x')"),
        ("http://127.0.0.1:8080/?x", "a query string ('x')"),
        ("http://127.0.0.1:8080#top", "a fragment ('top')"),
        ("http://127.0.0.1:99999", "a bad port"),
        ("http://127.0.0.1:", "an empty port"),
        ("http://[::1]:", "an empty port"),
        ("http://:8080", "no host"),
    ],
)
def test_server_with_more_than_scheme_host_port_is_refused(url: str, found: str) -> None:
    with pytest.raises(UsageError) as caught:
        config_from_args([*BASE, "--server", url], {})
    assert str(caught.value) == (
        f"--server: {url!r} has {found}; use scheme://host[:port] such as http://127.0.0.1:8080"
    )
    with pytest.raises(UsageError, match=r"^PEER_SERVER \(--server\): .* has a path"):
        config_from_args(BASE, {"PEER_SERVER": "http://127.0.0.1:8080/foo"})


@pytest.mark.parametrize(
    "url", ["http://[::1", "http://::1]:80", "http://[::1]x:80", "http://[zz]"]
)
@pytest.mark.parametrize(
    ("via", "label"), [("flag", "--server"), ("env", "PEER_SERVER (--server)")]
)
def test_main_malformed_ipv6_server_is_one_usage_line(
    url: str,
    via: str,
    label: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """urlsplit raises ``ValueError: Invalid IPv6 URL`` on these: a usage line, not a traceback."""
    monkeypatch.delenv("PEER_SERVER", raising=False)
    argv = [*BASE, "--server", url] if via == "flag" else BASE
    if via == "env":
        monkeypatch.setenv("PEER_SERVER", url)
    assert main(argv) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"p2pcall-peer: {label}: {url!r} has a malformed [IPv6] host; "
        "use scheme://host[:port] such as http://127.0.0.1:8080 or http://[::1]:8080"
    ]


def test_main_server_with_path_is_one_usage_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*BASE, "--server", "http://127.0.0.1:8080/foo"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "p2pcall-peer: --server: 'http://127.0.0.1:8080/foo' has a path ('/foo'); "
        "use scheme://host[:port] such as http://127.0.0.1:8080"
    ]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("stun:[::1]:3478", "stun:[::1]:3478"),
        ("stuns:[2001:db8::1]", "stuns:[2001:db8::1]"),
        ("turn:u:p@[::1]:3478", "turn:[::1]:3478"),  # the credentials are never quoted
        ("turns:[::1]:5349", "turns:[::1]:5349"),
    ],
)
def test_ice_server_with_an_ipv6_literal_is_refused(url: str, shown: str) -> None:
    """aioice/aiortc parse no IPv6 literal: refused before connecting, not mid-call."""
    why = (
        "has an IPv6 literal host; IPv6 literals are not supported by aiortc's ICE agent, "
        "use a hostname or an IPv4 address"
    )
    with pytest.raises(UsageError) as caught:
        config_from_args([*BASE, "--ice-server", "stun:127.0.0.1", "--ice-server", url], {})
    assert str(caught.value) == f"--ice-server: {shown!r} {why}"
    with pytest.raises(UsageError) as caught:
        config_from_args(BASE, {"PEER_ICE_SERVERS": url})
    assert str(caught.value) == f"PEER_ICE_SERVERS (--ice-server): {shown!r} {why}"


@pytest.mark.parametrize("name", ["a\x07b", "\u202eevil", "tab\there", "\U000f0000", "x" * 65, ""])
def test_a_name_the_hub_would_refuse_is_a_usage_error(name: str) -> None:
    """The hub's own rule (``signaling.protocol.parse_name``), checked before connecting."""
    rule = (
        "must be 1-64 characters with no control, surrogate, private-use, unassigned or "
        "bidi override/isolate character (U+202A-U+202E, U+2066-U+2069)"
    )
    with pytest.raises(UsageError) as caught:
        config_from_args([*BASE, "--name", name], {})
    assert str(caught.value) == f"--name: {rule}, got {name!r}"
    with pytest.raises(UsageError) as caught:
        config_from_args(BASE, {"PEER_NAME": name})
    assert str(caught.value) == f"PEER_NAME (--name): {rule}, got {name!r}"
    assert "\x07" not in str(caught.value) and "\u202e" not in str(caught.value)


@pytest.mark.parametrize("size", ["100000x100000", "3842x480", "640x2162", "99999999999x2"])
def test_a_size_too_large_says_the_accepted_range(size: str) -> None:
    with pytest.raises(UsageError) as caught:
        config_from_args([*BASE, "--size", size], {})
    assert str(caught.value) == (
        f"--size: {size!r} is too large; width and height are even numbers from 160x34 "
        "up to 3840x2160"
    )
    assert config_from_args([*BASE, "--size", "3840x2160"], {}).size == (3840, 2160)


def test_help_says_a_file_or_webcam_is_scaled_to_size() -> None:
    text = " ".join(build_parser().format_help().split())
    assert "a webcam or video file is scaled to it, stretched when its aspect ratio" in text
    assert "a file or webcam picture is scaled to --size" in text


def test_bad_env_flag_value() -> None:
    with pytest.raises(UsageError, match=r"^PEER_SHOW \(--show\): expected one of 1, true"):
        config_from_args(BASE, {"PEER_SHOW": "maybe"})


NO_DISPLAY = (
    "needs X11's DISPLAY, which is not set; the video window is an X11 window "
    "(a Wayland session provides DISPLAY through XWayland)"
)


@pytest.mark.parametrize(
    ("argv", "env", "label"),
    [
        (["--show"], {}, "--show"),
        (["--show"], {"DISPLAY": "", "WAYLAND_DISPLAY": ""}, "--show"),
        # OpenCV's Qt has only the xcb plugin: with Wayland alone it aborts mid-call
        (["--show"], {"WAYLAND_DISPLAY": "wayland-0"}, "--show"),
        ([], {"PEER_SHOW": "1"}, "PEER_SHOW (--show)"),
        ([], {"PEER_SHOW": "1", "WAYLAND_DISPLAY": "wayland-0"}, "PEER_SHOW (--show)"),
    ],
)
def test_show_without_an_x11_display_is_a_usage_error(
    argv: list[str], env: dict[str, str], label: str
) -> None:
    with pytest.raises(UsageError) as caught:
        config_from_args([*BASE, *argv], env)
    assert str(caught.value) == f"{label} {NO_DISPLAY}"


@pytest.mark.parametrize(
    "display", [{"DISPLAY": ":0"}, {"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0"}]
)
def test_show_with_a_display(display: dict[str, str]) -> None:
    assert config_from_args([*BASE, "--show"], display).show
    assert config_from_args(BASE, {"PEER_SHOW": "1", **display}).show
    assert not config_from_args(BASE, {"PEER_SHOW": "0"}).show  # off needs no display


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PEER_FPS": "x"}, "PEER_FPS (--fps): expected a number, got 'x'"),
        ({"PEER_FPS": "90"}, "PEER_FPS (--fps): at most 60, got '90'"),
        ({"PEER_SIZE": "big"}, "PEER_SIZE (--size): expected WxH such as 640x480, got 'big'"),
        ({"PEER_CODEC": "av1"}, "PEER_CODEC (--codec): expected vp8 or h264, got 'av1'"),
        ({"PEER_TIMEOUT": "-1"}, "PEER_TIMEOUT (--timeout): must be a number > 0, got '-1'"),
        ({"PEER_DURATION": "0"}, "PEER_DURATION (--duration): must be a number > 0, got '0'"),
        ({"PEER_NAME": ""}, "PEER_NAME (--name): must be 1-64 characters"),
        ({"PEER_ROLE": "boss"}, "PEER_ROLE (--role): expected caller or answerer, got 'boss'"),
        (
            {"PEER_ROOM": "a b"},
            "PEER_ROOM (--room): 'a b' is malformed; use 1-64 of A-Z a-z 0-9 _ -",
        ),
        ({"PEER_AUDIO": "beep"}, "PEER_AUDIO (--audio): 'beep' is neither a source nor a file"),
        ({"PEER_VIDEO": "/no/f.mp4"}, "PEER_VIDEO (--video): '/no/f.mp4' is neither a source"),
        ({"PEER_RECORD": "x.avi"}, "PEER_RECORD (--record): 'x.avi' has no supported extension"),
        ({"PEER_STATS_JSON": "/no/x.json"}, "PEER_STATS_JSON (--stats-json): folder of"),
        ({"PEER_SERVER": "ftp://x"}, "PEER_SERVER (--server): expected an http:// or https://"),
        ({"PEER_ICE_SERVERS": "stun:h http://x"}, "PEER_ICE_SERVERS (--ice-server): 'http://x'"),
        ({"PEER_CHAT": "maybe"}, "PEER_CHAT (--chat): expected one of"),
        ({"PEER_RELAY_ONLY": "2"}, "PEER_RELAY_ONLY (--relay-only): expected one of"),
        ({"PEER_NO_MDNS": "?"}, "PEER_NO_MDNS (--no-mdns): expected one of"),
        ({"PEER_VERBOSE": "lots"}, "PEER_VERBOSE (--verbose): expected a number, got 'lots'"),
    ],
)
def test_bad_environment_value_names_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError) as caught:
        config_from_args([], {"PEER_ROOM": "r1", "PEER_ROLE": "caller", **env})
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("flag", "var", "bad"),
    [("--fps", "PEER_FPS", "x"), ("--size", "PEER_SIZE", "1"), ("--server", "PEER_SERVER", "x")],
)
def test_a_bad_flag_is_named_as_the_flag_even_when_the_variable_is_set(
    flag: str, var: str, bad: str
) -> None:
    with pytest.raises(UsageError, match=f"^{flag}: "):
        config_from_args([*BASE, flag, bad], {var: bad})


def test_main_usage_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*BASE, "--size", "x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["p2pcall-peer: --size: expected WxH such as 640x480, got 'x'"]


def test_room_new_generates_a_private_room_for_callers_only() -> None:
    a = config_from_args(["--room", "new", "--role", "caller"], environ={})
    b = config_from_args(["--room", "new", "--role", "caller"], environ={})
    assert a.private_room and len(a.room) == 22 and a.room != b.room
    with pytest.raises(UsageError, match=r"^--room new: only a caller"):
        config_from_args(["--room", "new", "--role", "answerer"], environ={})


def test_room_with_trailing_newline_is_refused() -> None:
    with pytest.raises(UsageError, match=r"^--room: 'demo\\n' is malformed"):
        config_from_args(["--room", "demo\n", "--role", "caller"], environ={})
