"""Remote chat text is printed with its control and format characters escaped."""

from __future__ import annotations

import pytest

from peer.session import _print_chat
from peer.terminal import printable


def test_escape_sequences_are_printed_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    _print_chat({"type": "chat", "text": "\u001b]0;X\u0007\u001b[2J", "from": "x\u202e"})
    out = capsys.readouterr().out
    assert out == "x\\u202e: \\x1b]0;X\\x07\\x1b[2J\n"
    assert "\x1b" not in out and "\x07" not in out


def test_ordinary_text_is_unchanged() -> None:
    assert printable("héllo wörld 你好 🙂") == "héllo wörld 你好 🙂"
    assert printable("a\nb\tc\u2028d\ud800") == "a\\x0ab\\x09c\\u2028d\\ud800"
