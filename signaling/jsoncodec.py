"""JSON for python-socketio: orjson when installed (about 3x faster), else stdlib.

python-socketio calls ``dumps(data, separators=...)`` and ``loads(text)``; this
module offers exactly that pair.
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
        return orjson.dumps(data).decode()
    return json.dumps(data, separators=(",", ":"))


def loads(text: str | bytes) -> Any:
    if orjson is not None:
        return orjson.loads(text)
    return json.loads(text)
