"""The ``python -m peer`` commands in the docs name their hub and parse as written."""

from __future__ import annotations

import re
import shlex

import pytest

from peer.config import config_from_args
from tests.conftest import ROOT

DOCS = ("README.md", "docs/peer.md", "docs/deploy.md")
COMMAND = re.compile(r"^(?:\.venv/bin/)?python -m peer (.*)$", re.M)


def doc_commands(doc: str) -> list[list[str]]:
    """Every peer command in ``doc``'s ``sh`` blocks, as argv after ``-m peer``."""
    text = (ROOT / doc).read_text(encoding="utf-8")
    blocks = re.findall(r"^```sh\n(.*?)^```", text, re.M | re.S)
    found: list[list[str]] = []
    for block in blocks:
        # a backslash-continued command is one line to the shell
        for match in COMMAND.finditer(block.replace("\\\n", " ")):
            argv = shlex.split(match.group(1), comments=True)
            found.append([a for a in argv if a != "&"])
    return found


@pytest.mark.parametrize("doc", DOCS)
def test_peer_examples_name_the_hub_and_parse(doc: str) -> None:
    commands = doc_commands(doc)
    assert commands, f"no python -m peer example found in {doc}"
    for argv in commands:
        # the hub's address is spelled out, so an example works unchanged on another port
        assert "--server" in argv, f"{doc}: {shlex.join(argv)}"
        # the --show example is for a desktop: it has a display there
        config_from_args(argv, environ={"DISPLAY": ":0"})
