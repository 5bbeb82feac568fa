"""TURN REST credentials: minted per connection, checked by HMAC, the secret kept in the hub."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from dataclasses import replace

import pytest

from signaling import Config
from signaling.config import ConfigError, config_from_args
from signaling.turn import TurnConfigError, TurnCredentials, credential_for, expiry_of
from tests.conftest import spawn_hub, start_hub
from tests.hub.client import party

SECRET = "s3cret-shared-with-coturn"
URLS = ("turn:10.0.0.1:3478", "turn:10.0.0.1:3478?transport=tcp", "turns:turn.example:5349")


def test_credential_matches_coturns_hmac() -> None:
    # from: echo -n "1700003600:abc" | openssl dgst -sha1 -hmac s3cret -binary | base64
    assert credential_for("s3cret", "1700003600:abc") == "Fe5EJwoqvfV1NLt6WgDwx7yTyxg="


def test_mint_gives_expiry_id_and_hmac_for_all_urls() -> None:
    turn = TurnCredentials(secret=SECRET, urls=URLS, ttl=600)
    server = turn.mint(now=1_700_000_000.9, conn_id="conn-1")
    assert server["urls"] == list(URLS)
    assert server["username"] == "1700000600:conn-1"
    assert expiry_of(server["username"]) == 1_700_000_600
    digest = hmac.new(SECRET.encode(), b"1700000600:conn-1", hashlib.sha1).digest()
    assert base64.b64decode(server["credential"]) == digest
    assert SECRET not in repr(turn) and SECRET not in str(server)
    with pytest.raises(ValueError, match="TURN id"):
        turn.mint(now=0, conn_id="a:b")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"secret": "", "urls": URLS}, "--turn-secret: must not be empty"),
        ({"secret": "x", "urls": URLS}, r"--turn-secret: must be at least 16 characters \(got 1\)"),
        ({"secret": SECRET, "urls": ()}, "at least one --turn-url"),
        ({"secret": SECRET, "urls": ("stun:h:3478",)}, "not a TURN URL"),
        ({"secret": SECRET, "urls": ("turn:bob:pw@h:3478",)}, "must not carry USER:SECRET@"),
        ({"secret": SECRET, "urls": ("turn:",)}, "has no host"),
        ({"secret": SECRET, "urls": URLS, "ttl": 0}, "--turn-ttl"),
    ],
)
def test_bad_turn_settings_say_what_is_accepted(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(TurnConfigError, match=message):
        TurnCredentials(**kwargs)  # type: ignore[arg-type]


def test_flags_and_environment() -> None:
    cfg = config_from_args(
        ["--turn-secret", SECRET, "--turn-url", URLS[0], "--turn-url", URLS[1]], environ={}
    )
    assert cfg.turn == TurnCredentials(secret=SECRET, urls=URLS[:2], ttl=3600)
    env = {
        "SIGNALING_TURN_SECRET": SECRET,
        "SIGNALING_TURN_URLS": " ".join(URLS),
        "SIGNALING_TURN_TTL": "60",
    }
    assert config_from_args([], environ=env).turn == TurnCredentials(SECRET, URLS, 60)
    assert config_from_args(["--turn-ttl", "5"], environ=env).turn == TurnCredentials(
        SECRET, URLS, 5
    )
    assert config_from_args([], environ={}).turn is None
    assert SECRET not in repr(config_from_args([], environ=env))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--turn-url", URLS[0]], "need --turn-secret"),
        (["--turn-secret", SECRET], "at least one --turn-url"),
        (["--turn-secret", SECRET, "--turn-url", URLS[0], "--turn-ttl", "soon"], "--turn-ttl"),
        (["--turn-secret", SECRET, "--turn-url", "http://h"], "--turn-url"),
        (["--turn-secret", "a", "--turn-url", URLS[0]], "--turn-secret: must be at least 16"),
    ],
)
def test_bad_flags_name_the_flag(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_args(argv, environ={})


async def test_each_welcome_carries_fresh_credentials_named_apart_from_the_sid() -> None:
    config = replace(
        Config(port=0),
        ice_servers=({"urls": ["stun:10.0.0.1:3478"]},),
        turn=TurnCredentials(secret=SECRET, urls=URLS, ttl=120),
    )
    running, runner = await start_hub(config)
    try:
        before = time.time()
        a, b = await asyncio.gather(party(running.url), party(running.url))
        try:
            welcomes = [await a.welcome, await b.welcome]
        finally:
            await a.close()
            await b.close()
    finally:
        await runner.cleanup()
    users = set()
    for welcome in welcomes:
        stun, turn = welcome["iceServers"]
        assert stun == {"urls": ["stun:10.0.0.1:3478"]}
        assert turn["urls"] == list(URLS)
        expiry, conn_id = turn["username"].split(":", 1)
        assert before + 120 - 1 <= int(expiry) <= time.time() + 120
        assert conn_id not in (welcome["sid"], welcome.get("session"))
        assert turn["credential"] == credential_for(SECRET, turn["username"])
        assert SECRET not in str(welcome)
        users.add(turn["username"])
    assert len(users) == 2


def test_secret_is_never_logged_even_at_debug() -> None:
    hp = spawn_hub(
        "--log-level", "debug", "--turn-secret", SECRET, "--turn-url", URLS[0], "--turn-ttl", "30"
    )

    async def connect_once() -> str:
        p = await party(hp.url)
        try:
            return str((await p.welcome)["iceServers"][0]["credential"])
        finally:
            await p.close()

    try:
        credential = asyncio.run(connect_once())
    finally:
        err = hp.stop()
    assert f"minting TURN credentials for {URLS[0]}, valid 30 s" in err
    assert "TURN user id=" in err
    assert SECRET not in err and credential not in err
