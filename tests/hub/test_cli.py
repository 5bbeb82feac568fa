"""The hub's settings and command line, in-process and as a real subprocess."""

from __future__ import annotations

import errno
import json
import resource
import socket
import subprocess
import sys
import urllib.request

import pytest

from signaling.cli import _reason, main
from signaling.config import (
    NUMBER_FLAGS,
    Config,
    ConfigError,
    config_from_args,
    parse_ice_server,
)
from signaling.edge import fd_limit_target
from tests.conftest import ROOT, spawn_hub


def test_defaults() -> None:
    assert config_from_args([], environ={}) == Config()


def test_flags_win_over_environment() -> None:
    env = {
        "SIGNALING_HOST": "0.0.0.0",
        "SIGNALING_PORT": "9000",
        "SIGNALING_OFFER_TTL": "30",
        "SIGNALING_TOKEN": "from-env-0123456789",
        "SIGNALING_ICE_SERVERS": "stun:127.0.0.1:3478 turn:u:p@127.0.0.1:3478",
        "SIGNALING_LOG_LEVEL": "DEBUG",
    }
    cfg = config_from_args([], environ=env)
    assert (cfg.host, cfg.port, cfg.offer_ttl, cfg.token, cfg.log_level) == (
        "0.0.0.0",
        9000,
        30.0,
        "from-env-0123456789",
        "debug",
    )
    assert cfg.ice_servers == (
        {"urls": ["stun:127.0.0.1:3478"]},
        {"urls": ["turn:127.0.0.1:3478"], "username": "u", "credential": "p"},
    )
    cfg = config_from_args(
        ["--port", "0", "--token", "flag-0123456789abc", "--ice-server", "stun:h"], env
    )
    assert (
        cfg.port == 0
        and cfg.token == "flag-0123456789abc"
        and cfg.ice_servers == ({"urls": ["stun:h"]},)
    )


def test_resume_grace_from_flag_or_environment() -> None:
    assert Config().resume_grace == 30.0
    assert config_from_args([], environ={"SIGNALING_RESUME_GRACE": "0"}).resume_grace == 0.0
    env = {"SIGNALING_RESUME_GRACE": "5"}
    assert config_from_args(["--resume-grace", "2.5"], environ=env).resume_grace == 2.5


def test_token_is_not_in_repr() -> None:
    assert "hunter2-0123456789" not in repr(Config(token="hunter2-0123456789"))


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--port", "abc"], "--port"),
        (["--port", "70000"], "--port"),
        (["--port", "-1"], "--port"),
        (["--offer-ttl", "0"], "--offer-ttl"),
        (["--offer-ttl", "soon"], "--offer-ttl"),
        (["--ice-server", "http://example"], "--ice-server"),
        (["--ice-server", "turn:user@host"], "--ice-server"),
        (["--ice-server", "stun:u:p@host"], "--ice-server"),
        (["--log-level", "loud"], "--log-level"),
        (["--token", ""], "--token"),
        (["--host", ""], "--host"),
        (["--resume-grace", "-1"], "--resume-grace"),
        (["--resume-grace", "inf"], "--resume-grace"),
        (["--resume-grace", "a while"], "--resume-grace"),
    ],
)
def test_bad_values_name_the_flag(argv: list[str], flag: str) -> None:
    with pytest.raises(ConfigError, match=f"^{flag}:"):
        config_from_args(argv, environ={})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SIGNALING_PORT": "abc"}, "SIGNALING_PORT (--port): expected an integer, got 'abc'"),
        ({"SIGNALING_PORT": "70000"}, "SIGNALING_PORT (--port): must be 0-65535, got '70000'"),
        ({"SIGNALING_HOST": ""}, "SIGNALING_HOST (--host): must not be empty"),
        ({"SIGNALING_TOKEN": ""}, "SIGNALING_TOKEN (--token): must not be empty"),
        ({"SIGNALING_TOKEN": "short"}, "SIGNALING_TOKEN (--token): must be at least 16"),
        ({"SIGNALING_OFFER_TTL": "0"}, "SIGNALING_OFFER_TTL (--offer-ttl): must be > 0"),
        ({"SIGNALING_RESUME_GRACE": "x"}, "SIGNALING_RESUME_GRACE (--resume-grace): expected"),
        ({"SIGNALING_LOG_LEVEL": "loud"}, "SIGNALING_LOG_LEVEL (--log-level): expected one of"),
        ({"SIGNALING_TRANSPORT": "x"}, "SIGNALING_TRANSPORT (--transport): expected one of"),
        ({"SIGNALING_REDIS": "http://h"}, "SIGNALING_REDIS (--redis): expected redis://"),
        ({"SIGNALING_PING_TIMEOUT": "0"}, "SIGNALING_PING_TIMEOUT (--ping-timeout): must be > 0"),
        (
            {"SIGNALING_MAX_HELD_BYTES": "1.5"},
            "SIGNALING_MAX_HELD_BYTES (--max-held-bytes): expected an integer, got '1.5'",
        ),
        (
            {"SIGNALING_ICE_SERVERS": "stun:h http://x"},
            "SIGNALING_ICE_SERVERS (--ice-server): 'http://x' is not a STUN/TURN URL",
        ),
        (
            {"SIGNALING_CORS_ORIGINS": "http://a/b"},
            "SIGNALING_CORS_ORIGINS (--cors-origin): expected scheme://host[:port]",
        ),
        (
            {"SIGNALING_TURN_SECRET": "x" * 16, "SIGNALING_TURN_URLS": "stun:h"},
            "SIGNALING_TURN_URLS (--turn-url): 'stun:h' is not a TURN URL",
        ),
        ({"SIGNALING_TURN_SECRET": ""}, "SIGNALING_TURN_SECRET (--turn-secret): must not be empty"),
        ({"SIGNALING_TURN_URLS": "turn:h"}, "SIGNALING_TURN_URLS (--turn-url): need --turn-secret"),
        (
            {"SIGNALING_TURN_SECRET": "a", "SIGNALING_TURN_URLS": "turn:h"},
            "SIGNALING_TURN_SECRET (--turn-secret): must be at least 16 characters (got 1)",
        ),
        (
            {
                "SIGNALING_TURN_SECRET": "x" * 16,
                "SIGNALING_TURN_URLS": "turn:h",
                "SIGNALING_TURN_TTL": "0",
            },
            "SIGNALING_TURN_TTL (--turn-ttl): must be > 0",
        ),
    ],
)
def test_bad_environment_value_names_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_args([], environ=env)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_every_number_flag_names_its_variable() -> None:
    for nf in NUMBER_FLAGS:
        with pytest.raises(ConfigError, match=rf"^{nf.env} \({nf.flag}\): expected"):
            config_from_args([], environ={nf.env: "lots"})
        with pytest.raises(ConfigError, match=rf"^{nf.flag}: expected"):
            config_from_args([nf.flag, "lots"], environ={nf.env: "lots"})


def test_allowed_hosts_from_the_variable() -> None:
    cfg = config_from_args([], environ={"SIGNALING_ALLOWED_HOSTS": "A.example b.example"})
    assert cfg.allowed_hosts == ("a.example", "b.example")
    assert config_from_args([], environ={"SIGNALING_ALLOWED_HOSTS": ""}).allowed_hosts == ()


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--allowed-host", ""], {}, "--allowed-host: must not be empty; expected a host"),
        (["--allowed-host", " "], {}, "--allowed-host: must not be empty"),
        (
            ["--allowed-host", "a.example,b.example"],
            {},
            "--allowed-host: 'a.example,b.example' is not one host (a comma or space cannot be "
            "in one); give several by repeating --allowed-host, or space-separated in "
            "SIGNALING_ALLOWED_HOSTS",
        ),
        (
            [],
            {"SIGNALING_ALLOWED_HOSTS": "a.example,b.example"},
            "SIGNALING_ALLOWED_HOSTS (--allowed-host): 'a.example,b.example' is not one host",
        ),
        (
            ["--allowed-host", "a.example:8413"],
            {},
            "--allowed-host: 'a.example:8413' carries a port; expected the host alone "
            "(a request's port is not compared), e.g. 'a.example'",
        ),
        (
            ["--allowed-host", "[::1]:8413"],
            {},
            "--allowed-host: '[::1]:8413' carries a port; expected the host alone",
        ),
        (["--allowed-host", "[]"], {}, "--allowed-host: '[]' is not a host; expected a name"),
        (["--allowed-host", "a]"], {}, "--allowed-host: 'a]' is not a host"),
        (
            ["--cors-origin", "http://a.example,http://b.example"],
            {},
            "--cors-origin: expected scheme://host[:port] with no path",
        ),
    ],
)
def test_allowed_host_must_be_one_host(argv: list[str], env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_args(argv, environ=env)
    assert str(caught.value).startswith(message)


def test_allowed_host_takes_an_ipv6_address_with_or_without_brackets() -> None:
    argv = ["--allowed-host", "[::1]", "--allowed-host", "FE80::1", "--allowed-host", "0:0::0:2"]
    # bare and short, as the Host guard compares them (a request's URL host)
    assert config_from_args(argv, environ={}).allowed_hosts == ("::1", "fe80::1", "::2")


def test_allowed_hosts_repeat_the_flag() -> None:
    argv = ["--allowed-host", "A.example", "--allowed-host", "b.example"]
    assert config_from_args(argv, environ={}).allowed_hosts == ("a.example", "b.example")


def test_empty_allowed_host_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--allowed-host", ""]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "p2pcall-signaling: --allowed-host: must not be empty; expected a host name or IP address"
    ]


def test_main_names_the_variable_in_its_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGNALING_PORT", "abc")
    assert main([]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "p2pcall-signaling: SIGNALING_PORT (--port): expected an integer, got 'abc'"
    ]


def test_turn_url_with_query() -> None:
    assert parse_ice_server("turn:al%40ice:se:cret@127.0.0.1:3478?transport=tcp") == {
        "urls": ["turn:127.0.0.1:3478?transport=tcp"],
        "username": "al@ice",
        "credential": "se:cret",
    }


@pytest.mark.parametrize(
    "url",
    [
        "stun:stun.example.org",
        "stun:stun.example.org:3478",
        "stuns:stun.example.org:5349",
        "stun:127.0.0.1:1",
        "stun:[::1]:3478",
        "stun:[2001:db8::1]",
        "turn:turn.example.org",
        "turn:127.0.0.1:65535",
        "turn:turn.example.org:3478?transport=udp",
        "turn:[::1]:3478?transport=tcp",
        "turns:turn.example.org:5349",
        "turns:turn.example.org:5349?transport=tcp",
        "turns:turn.example.org?transport=udp",  # RFC 7065 allows it: TURN over DTLS
        "turn:xn--bcher-kva.example:3478",
        "turn:my_host.local",
    ],
)
def test_good_ice_urls_pass_through(url: str) -> None:
    assert parse_ice_server(url) == {"urls": [url]}


def test_credentials_are_split_out_of_any_turn_url() -> None:
    assert parse_ice_server("turns:u:p@[::1]:5349?transport=tcp") == {
        "urls": ["turns:[::1]:5349?transport=tcp"],
        "username": "u",
        "credential": "p",
    }


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://example", "'http://example' is not a STUN/TURN URL; expected stun:HOST[:PORT]"),
        ("STUN:h", "'STUN:h' is not a STUN/TURN URL"),
        ("stun", "'stun' is not a STUN/TURN URL"),
        ("stun:", "'stun:' has no host; expected stun:HOST[:PORT] or stuns:HOST[:PORT]"),
        ("turn::3478", "'turn::3478' has no host; expected turn:[USER:SECRET@]HOST"),
        ("stun:::1", "'stun:::1' has no host; an IPv6 address goes in brackets, [::1]:3478"),
        ("stun:[::g]:3478", "'stun:[::g]:3478': [::g] is not an IPv6 address"),
        ("stun:[::1", "'stun:[::1': not HOST[:PORT]"),
        ("stun:my host", "'stun:my host': host 'my host' is not a DNS name, IPv4 address"),
        ("stun:h%zz", "host 'h%zz' is not a DNS name"),
        ("stun:!!", "host '!!' is not a DNS name"),
        ("stun:300.1.1.1", "'stun:300.1.1.1': '300.1.1.1' is not an IPv4 address a.b.c.d"),
        ("stun:h:", "'stun:h:': port must be 1-65535, got ''"),
        ("stun:h:0", "port must be 1-65535, got '0'"),
        ("turn:h:99999", "'turn:h:99999': port must be 1-65535, got '99999'"),
        ("turn:h:003478000", "port must be 1-65535, got '003478000'"),
        ("turn:h:port", "port must be 1-65535, got 'port'"),
        ("turn:h:3478:extra", "port must be 1-65535, got '3478:extra'"),
        ("turn:h:-1", "port must be 1-65535, got '-1'"),
        ("stun:h?transport=udp", "'stun:h?transport=udp': STUN URLs take no query; expected stun:"),
        ("turn:h?transport=sctp", "'turn:h?transport=sctp': transport must be udp or tcp"),
        ("turn:h?transport=", "transport must be udp or tcp, got ''"),
        ("turn:h?proto=udp", "the only query a TURN URL takes is ?transport=udp|tcp (RFC 7065)"),
        ("turn:h?", "the only query a TURN URL takes is ?transport=udp|tcp"),
        ("turn:user@host", "TURN credentials in 'turn:USER:***@host' must be USER:SECRET@"),
        ("turn:u:@host", "must be USER:SECRET@, both non-empty"),
        ("turn:@host", "must be USER:SECRET@, both non-empty"),
        ("stun:u:p@host", "STUN URLs carry no credentials ('stun:USER:***@host')"),
    ],
)
def test_bad_ice_urls_are_one_line_saying_what_is_accepted(url: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_args(["--ice-server", url], environ={})
    assert str(caught.value).startswith("--ice-server: ")
    assert message in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "turn:alice:hunter2hunter2@host:99999",
        "turn:alice:hunter2hunter2@my host",
        "turn:alice:hunter2hunter2@host?transport=sctp",
        "stun:alice:hunter2hunter2@host",
        "turm:alice:hunter2hunter2@host",
        "turn:alice:hunter2hunter2@",
    ],
)
def test_ice_url_errors_never_quote_the_secret(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_ice_server(url)
    assert "hunter2hunter2" not in str(caught.value)
    assert "alice" not in str(caught.value)


def test_main_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--port", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["p2pcall-signaling: --port: expected an integer, got 'nope'"]


def test_subprocess_serves_and_logs_bound_url_without_secrets() -> None:
    hp = spawn_hub(
        "--token", "topsecret-0123456789", "--ice-server", "turn:bob:pw123@127.0.0.1:3478"
    )
    try:
        with urllib.request.urlopen(f"{hp.url}/healthz", timeout=10) as resp:
            health = json.load(resp)
        assert health["status"] == "ok" and health["sockets"] == 0
        with urllib.request.urlopen(f"{hp.url}/", timeout=10) as resp:
            assert resp.status == 200
    finally:
        err = hp.stop()
    assert hp.process.returncode == 0
    assert "listening on http://127.0.0.1:" in err
    assert "topsecret-0123456789" not in err and "pw123" not in err


def test_subprocess_port_in_use_is_the_one_line_readme_quotes() -> None:
    # a listening socket holds the port: SO_REUSEADDR on the hub's side does not get past it
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "signaling", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=ROOT,
        )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        f"p2pcall-signaling: cannot listen on 127.0.0.1:{port}: address already in use"
    )
    assert "Traceback" not in proc.stderr
    assert "shutting down" not in proc.stderr  # it never started


@pytest.mark.parametrize("host", ["999.1.1.1", "nosuchhost.invalid"])
def test_subprocess_host_that_does_not_resolve_is_one_line(host: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "signaling", "--host", host, "--port", "8354"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"p2pcall-signaling: cannot listen on {host}:8354: the host does not ")
    assert "expected an IP address of this machine or a name that resolves to one" in last
    assert "unknown error" not in proc.stderr and "Traceback" not in proc.stderr
    assert "shutting down" not in proc.stderr  # it never started


def test_gaierror_says_the_host_does_not_resolve() -> None:
    reason = _reason(socket.gaierror(socket.EAI_NONAME, "Name or service not known"))
    assert reason.startswith("the host does not resolve (name or service not known)")


def test_listen_failure_without_errno_keeps_its_own_words() -> None:
    assert _reason(OSError(errno.EACCES, "error while attempting to bind")) == "permission denied"
    assert _reason(OSError("Bind refused")) == "bind refused"


def test_short_token_is_refused_at_start() -> None:
    with pytest.raises(ConfigError, match=r"^--token: must be at least 16 characters"):
        config_from_args(["--token", "1"], environ={})
    assert main(["--token", "short"]) == 2


def test_ping_and_limit_flags_have_env_fallbacks() -> None:
    cfg = config_from_args(
        ["--ping-interval", "5"],
        environ={"SIGNALING_PING_TIMEOUT": "7", "SIGNALING_MAX_CONNECTIONS_PER_ADDRESS": "0"},
    )
    assert (cfg.ping_interval, cfg.ping_timeout, cfg.max_connections_per_address) == (5, 7, 0)
    with pytest.raises(ConfigError, match=r"^--ping-timeout:"):
        config_from_args(["--ping-timeout", "0"], environ={})


def test_soft_open_files_limit_is_raised_to_the_hard_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = fd_limit_target(hard)
    low = min(256, target)

    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))

    hp = spawn_hub(preexec_fn=lower)
    log = hp.stop()  # the limit is logged before the bound URL, which spawn_hub waits for
    assert f"open-files limit {target} (hard " in log, log


def test_cli_module_loads_no_server_stack() -> None:
    """The console script imports signaling.cli outside main(): a Ctrl-C there is a trace.

    So that import is kept short: aiohttp and python-socketio load inside main().
    """
    probe = "import sys, signaling.cli; print(sorted({'aiohttp', 'socketio'} & set(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=30, cwd=ROOT
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
