"""Debian's firefox-esr for the browser tests, driven over WebDriver BiDi.

Playwright for Python drives Chromium but only its own patched Firefox builds, which are
downloads. Firefox itself speaks WebDriver BiDi, and puppeteer-core (npm, pinned in
``firefox_driver/package-lock.json``, installed by ``make setup``; it never downloads a
browser) speaks it from Node. ``firefox_driver/driver.mjs`` is that small Node process; this
module talks to it with one JSON object per line (the protocol is described at the top of
``driver.mjs``) and gives pytest a :class:`FirefoxPage` with the same ``evaluate`` /
``wait_for_function`` / ``fill`` / ``press`` / ``screenshot`` calls as a Playwright page,
so the helpers in ``pages.py`` drive either browser.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shutil
from pathlib import Path
from typing import Any

FIREFOX = Path("/usr/bin/firefox-esr")
DRIVER_DIR = Path(__file__).resolve().parent / "firefox_driver"
DRIVER = DRIVER_DIR / "driver.mjs"

# a request other than a wait or the first open
REQUEST_TIMEOUT = 60.0
# the first open launches Firefox: 20 s seen on a loaded 2-core machine; the driver's own
# launch timeout is 90 s
OPEN_TIMEOUT = 120.0
# what a wait may take beyond its own timeout before the driver itself is suspect
WAIT_MARGIN = 15.0


class FirefoxError(Exception):
    """The driver refused a request (its message is Firefox's or puppeteer's) or died."""


def missing_parts() -> str | None:
    """What is not installed for driving Firefox, with how to install it; ``None`` if ready."""
    if not FIREFOX.exists():
        return f"{FIREFOX} is missing: apt-get install firefox-esr (make test does it)"
    if shutil.which("node") is None:
        return "node is missing: install Node.js 18 or newer"
    if not (DRIVER_DIR / "node_modules" / "puppeteer-core").is_dir():
        return f"puppeteer-core is missing: run make setup (npm ci --prefix {DRIVER_DIR})"
    return None


class Firefox:
    """One driver process, hence one Firefox (started on the first :meth:`open`)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = proc
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._consoles: dict[str, list[str]] = {}
        self._stderr: list[str] = []
        self._reader = asyncio.create_task(self._read_replies())
        self._stderr_reader = asyncio.create_task(self._read_stderr())

    @classmethod
    async def start(cls) -> Firefox:
        proc = await asyncio.create_subprocess_exec(
            "node",
            str(DRIVER),
            cwd=DRIVER_DIR,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=16 * 1024 * 1024,  # an evaluate may return a whole SDP or stats report
        )
        return cls(proc)

    async def _read_replies(self) -> None:
        assert self._proc.stdout is not None
        async for raw in self._proc.stdout:
            try:
                message = json.loads(raw)
            except ValueError:  # a stray print from Node or puppeteer: keep it for the log
                self._stderr.append(raw.decode(errors="replace"))
                continue
            if "id" in message:
                future = self._pending.pop(message["id"], None)
                if future is None or future.done():
                    continue
                if message["ok"]:
                    future.set_result(message["value"])
                else:
                    future.set_exception(FirefoxError(message["error"]))
            elif message.get("event") == "console":
                self._consoles.setdefault(message["page"], []).append(message["text"])
        # the driver is gone: nobody waits forever for a reply that cannot come
        for future in self._pending.values():
            if not future.done():
                future.set_exception(FirefoxError(f"firefox driver exited: {self.log()}"))
        self._pending.clear()

    async def _read_stderr(self) -> None:
        assert self._proc.stderr is not None
        async for raw in self._proc.stderr:
            self._stderr.append(raw.decode(errors="replace"))
            del self._stderr[:-50]

    def log(self) -> str:
        """The driver's last lines of stderr (Node and puppeteer errors)."""
        return "".join(self._stderr)[-2000:]

    async def request(self, op: str, wait_s: float = REQUEST_TIMEOUT, **fields: Any) -> Any:
        """Send one request and wait for its reply; :class:`FirefoxError` if refused."""
        if self._proc.returncode is not None or self._reader.done():
            raise FirefoxError(f"firefox driver exited: {self.log()}")
        assert self._proc.stdin is not None
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        line = json.dumps({"id": request_id, "op": op, **fields}) + "\n"
        self._proc.stdin.write(line.encode())
        await self._proc.stdin.drain()
        try:
            return await asyncio.wait_for(future, wait_s)
        except TimeoutError:
            raise FirefoxError(f"no reply to {op} in {wait_s} s: {self.log()}") from None
        finally:
            self._pending.pop(request_id, None)

    async def open(self, url: str) -> FirefoxPage:
        """A page at ``url`` in a browser context of its own (own permissions, storage)."""
        page_id = str(await self.request("open", OPEN_TIMEOUT, url=url))
        return FirefoxPage(self, page_id, self._consoles.setdefault(page_id, []))

    async def close(self) -> None:
        """Close Firefox (the driver does on end of input) and wait for the driver to exit."""
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        try:
            await asyncio.wait_for(self._proc.wait(), 30)
        except TimeoutError:
            self._proc.kill()
            await self._proc.wait()
        for task in (self._reader, self._stderr_reader):
            with contextlib.suppress(Exception):
                await task


class FirefoxPage:
    """A call page in Firefox, with the subset of Playwright's ``Page`` the tests use.

    Times are milliseconds, as in Playwright. ``console`` fills with ``"type: text"`` lines
    and ``"pageerror: ..."`` for uncaught exceptions, like the Chromium pages' logs.
    """

    def __init__(self, firefox: Firefox, page_id: str, console: list[str]) -> None:
        self._firefox = firefox
        self._id = page_id
        self.console = console

    async def evaluate(self, expression: str, arg: Any = None) -> Any:
        return await self._firefox.request(
            "evaluate", page=self._id, expression=expression, arg=arg
        )

    async def wait_for_function(
        self,
        expression: str,
        *,
        arg: Any = None,
        timeout: float | None = None,  # noqa: ASYNC109 (Playwright's name, in ms)
    ) -> Any:
        timeout_ms = 30_000 if timeout is None else timeout
        return await self._firefox.request(
            "waitForFunction",
            timeout_ms / 1000 + WAIT_MARGIN,
            page=self._id,
            expression=expression,
            arg=arg,
            timeoutMs=timeout_ms,
        )

    async def fill(self, selector: str, value: str) -> None:
        await self._firefox.request("fill", page=self._id, selector=selector, value=value)

    async def press(self, selector: str, key: str) -> None:
        await self._firefox.request("press", page=self._id, selector=selector, key=key)

    async def screenshot(self, *, path: Path) -> None:
        await self._firefox.request("screenshot", page=self._id, path=str(path))

    async def close(self) -> None:
        await self._firefox.request("close", page=self._id)
