"""Which TURN URL the peer gives aiortc: parsing, order, and what aiortc is handed."""

from __future__ import annotations

from typing import Any

import pytest

from peer.turn import TurnChoice, choose_turn, expiry_note, for_aiortc, parse_turn_url, turn_urls

SERVERS: list[dict[str, Any]] = [
    {"urls": ["stun:10.0.0.1:3478", "stun:10.0.0.2:3478"]},
    {
        "urls": ["turns:turn.example", "turn:10.0.0.1?transport=tcp", "turn:10.0.0.1:3478"],
        "username": "1700000600:abc",
        "credential": "c",
    },
]


def test_turn_urls_udp_then_tcp_then_tls_with_their_credentials() -> None:
    found = turn_urls(SERVERS)
    assert [(t.transport, t.host, t.port) for t in found] == [
        ("udp", "10.0.0.1", 3478),
        ("tcp", "10.0.0.1", 3478),
        ("tls", "turn.example", 5349),
    ]
    assert {t.username for t in found} == {"1700000600:abc"}


@pytest.mark.parametrize(
    "url", ["stun:h", "turn:", "turn:h?transport=sctp", "http://h", "turn:[::1", "turn:h:99999"]
)
def test_not_a_usable_turn_url(url: str) -> None:
    try:
        assert parse_turn_url(url, None, None) is None
    except ValueError:
        pytest.fail(f"{url!r} raised instead of being skipped")


def test_aiortc_gets_the_first_stun_and_only_the_chosen_turn() -> None:
    tcp = turn_urls(SERVERS)[1]
    assert for_aiortc(SERVERS, tcp) == [
        {"urls": ["stun:10.0.0.1:3478"]},
        {"urls": ["turn:10.0.0.1?transport=tcp"], "username": "1700000600:abc", "credential": "c"},
    ]
    assert for_aiortc(SERVERS, None) == [{"urls": ["stun:10.0.0.1:3478"]}]


def test_expiry_note_only_for_expired_rest_usernames() -> None:
    assert expiry_note("1700000600:abc", now=1_700_000_000) == ""
    assert expiry_note("1700000600:abc", now=1_700_000_630) == (
        " (the credentials expired at 22:23:20 UTC, 30 s ago)"
    )
    assert expiry_note("static-user", now=1e12) == ""
    assert expiry_note(None, now=1e12) == ""


async def test_no_turn_url_is_no_choice_and_no_probe() -> None:
    assert await choose_turn([{"urls": ["stun:10.0.0.1:3478"]}]) == TurnChoice(None)


async def test_a_refused_tcp_turn_is_a_reason_not_a_crash() -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on: connection refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    choice = await choose_turn(
        [{"urls": [f"turn:127.0.0.1:{port}?transport=tcp"], "username": "u", "credential": "p"}]
    )
    assert choice.chosen is None and not choice.auth_failed
    assert len(choice.failures) == 1 and "refused a TURN Allocate" in choice.failures[0]
