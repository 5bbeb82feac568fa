"""JSON for python-socketio: orjson when installed (about 3x faster), else stdlib.

python-socketio calls ``dumps(data, separators=...)`` and ``loads(text)``; this
module offers exactly that pair, falling back to the stdlib for what orjson
refuses, so both accept the same documents.
"""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

orjson: ModuleType | None
try:
    import orjson
except ImportError:  # pragma: no cover - orjson is an optional speed-up
    orjson = None


def dumps(data: Any, **_: Any) -> str:
    if orjson is not None:
        try:
            return orjson.dumps(data).decode()
        except TypeError:  # integers beyond 64 bits, exotic types: the stdlib copes
            pass
    return json.dumps(data, separators=(",", ":"))


def loads(text: str | bytes) -> Any:
    if orjson is not None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:  # e.g. integers beyond 64 bits; stdlib decides
            pass
    return json.loads(text)
