"""A logger for the libraries under the hub that turns a client's faults into warnings.

aiohttp logs every unparseable request (a 20 KB request line, a broken header) at
ERROR with a full traceback, once per request; python-engineio logs a bad session
id, protocol version or transport at ERROR the first time and at INFO every time
after, and, left to itself, adds a handler of its own, so each line printed twice.
All of these are caused by what a client sent, which anyone who can reach the port
can repeat at will. :class:`ClientFaultLog` is handed to those libraries in place
of their logger: client faults become one rate-limited warning per kind (see
:class:`~signaling.guards.RateLimitedWarning`), their chatter goes to DEBUG, and
a real fault in our code (any other exception) keeps its traceback.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

from .guards import RateLimitedWarning

# python-engineio appends this to the first occurrence of each error
ENGINEIO_SUFFIX = " (further occurrences of this error will be logged with level INFO)"
MAX_DETAIL = 120  # characters of a client's own text quoted in one warning


class ClientFaultLog:
    """Stands in for a ``logging.Logger`` given to aiohttp or python-engineio.

    ``warning``/``error`` lines are client faults: one rate-limited warning per
    kind (the line's first two words). ``exception`` is a client fault when the
    exception is aiohttp's ``HttpProcessingError`` (a request that does not
    parse); any other exception is logged with its traceback, as before.
    ``info`` and ``debug`` go to DEBUG. Anything else is the wrapped logger's.
    """

    def __init__(
        self,
        logger: logging.Logger,
        warnings: RateLimitedWarning | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._warnings = warnings or RateLimitedWarning(logger)
        self._clock = clock
        # bound once: python-engineio calls ``info`` for every packet it receives
        self.info = logger.debug
        self.debug = logger.debug

    def warning(self, message: str, *args: Any, **kwargs: Any) -> None:
        self._fault(_render(message, args))

    error = warning

    def exception(self, message: str, *args: Any, exc_info: Any = True, **kwargs: Any) -> None:
        exc = exc_info if isinstance(exc_info, BaseException) else sys.exc_info()[1]
        if isinstance(exc, HttpProcessingError):
            detail = str(exc.message).splitlines()[0] if exc.message else type(exc).__name__
            self._fault(f"{_render(message, args)}: {exc.code} {detail}")
        else:
            self._logger.exception(message, *args, exc_info=exc_info, **kwargs)

    def _fault(self, text: str) -> None:
        text = text.removesuffix(ENGINEIO_SUFFIX)
        kind = "client-fault:" + " ".join(text.split()[:2])
        self._warnings.warn(kind, self._clock(), "client fault: %s", text[:MAX_DETAIL])

    def __getattr__(self, name: str) -> Any:
        return getattr(self._logger, name)


def _render(message: str, args: tuple[Any, ...]) -> str:
    try:
        return message % args if args else message
    except (TypeError, ValueError):
        return message
