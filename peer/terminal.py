"""Text from the remote peer, made safe to print on a terminal.

A chat line is the other party's input: ESC sequences in it could retitle or
clear the user's terminal, move the cursor over earlier output, or (on some
terminals) answer back. Control and format characters (Unicode categories
``Cc``, ``Cf``, ``Zl``, ``Zp``, plus lone surrogates ``Cs``) are printed as
Python-style escapes instead, so they stay visible and inert.
"""

from __future__ import annotations

import unicodedata

UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def _escape(ch: str) -> str:
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def printable(text: str) -> str:
    """``text`` with every control or format character shown as an escape."""
    if text.isprintable():
        return text
    return "".join(
        _escape(ch) if unicodedata.category(ch) in UNSAFE_CATEGORIES else ch for ch in text
    )
