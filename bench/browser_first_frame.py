"""Browser → Python first frame: how soon a headless peer sees a browser caller's video.

The Python answerer (``python -m peer``, under :mod:`bench.media_launch` so the
wall-clock time of its first decoded frame is noted) waits in a room; Debian's
Chromium, driven by Playwright with a fake camera, opens the call page with its
camera already running, and the clock starts when **Call** is pressed. The figure
is that press to the answerer's first decoded frame, on one machine and one wall
clock. For reference the same run times what trickle ICE saves the browser: a full
ICE gathering of an equivalent ``RTCPeerConnection`` in the same page.

``python -m bench.browser_first_frame [--repeat N] [--smoke] [--out PATH]``; results
in ``bench/results/browser-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.chromium import BASE_FLAGS, CHROMIUM
from bench.media import RESULTS, environment, hub, python_module

FLAGS = [*BASE_FLAGS, "--use-fake-device-for-media-stream=fps=30"]
WAIT_S = 30.0
# A full gathering with the page's own settings: the cost trickle ICE hides.
GATHER_JS = """async (servers) => {
  const pc = new RTCPeerConnection({iceServers: servers});
  pc.addTransceiver("audio"); pc.addTransceiver("video");
  const began = performance.now();
  const done = new Promise((ok) => pc.addEventListener("icegatheringstatechange",
      () => pc.iceGatheringState === "complete" && ok()));
  await pc.setLocalDescription(await pc.createOffer());
  await done;
  pc.close();
  return performance.now() - began;
}"""


class BenchError(Exception):
    """The run could not complete; the message says where."""


def rooms_held(url: str) -> int:
    with urllib.request.urlopen(f"{url}/healthz", timeout=5) as resp:
        return int(json.load(resp)["rooms"])


def first_frame_unix_ms(note: Path) -> float | None:
    value = json.loads(note.read_text()).get("first_frame_unix_ms")
    return None if value is None else float(value)


async def wait_for(predicate: Any, what: str, limit: float = WAIT_S) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise BenchError(f"{what} within {limit:.0f} s")
        await asyncio.sleep(0.02)


async def one_run(browser: Any, url: str, workdir: Path) -> dict[str, Any]:
    room = f"ff-{uuid.uuid4().hex[:8]}"
    note = workdir / f"{room}.json"
    answerer = await asyncio.create_subprocess_exec(
        *python_module("bench.media_launch", str(note), "--"),
        *("--server", url, "--room", room, "--role", "answerer"),
        *("--video", "none", "--audio", "none", "--timeout", str(WAIT_S)),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    context = await browser.new_context(bypass_csp=True)  # for wait_for_function's eval
    try:
        await wait_for(lambda: rooms_held(url) > 0, "the Python answerer did not join")
        page = await context.new_page()
        await page.goto(f"{url}/?room={room}&name=bench")
        await page.click("#start-camera")
        await page.wait_for_function("window.p2pcall.localFrames > 5", timeout=WAIT_S * 1000)
        gather_ms = await page.evaluate(GATHER_JS, [])
        pressed = await page.evaluate(
            "() => { const t = Date.now(); document.querySelector('#call').click(); return t; }"
        )
        await page.wait_for_function(
            "document.body.dataset.callState === 'connected'", timeout=WAIT_S * 1000
        )
        connected = await page.evaluate("Date.now()")
        await asyncio.sleep(1.0)  # let the answerer see frames before the hang-up
        await page.evaluate("window.p2pcall.hangup()")
        _, err = await asyncio.wait_for(answerer.communicate(), WAIT_S)
    finally:
        await context.close()
        if answerer.returncode is None:
            answerer.kill()
            await answerer.wait()
    if answerer.returncode != 0:
        raise BenchError(f"answerer exited {answerer.returncode}: {err.decode()[-300:]}")
    first = first_frame_unix_ms(note)
    if first is None:
        raise BenchError("the Python answerer received no video frame")
    return {
        "first_frame_ms": round(first - pressed, 1),
        "browser_connected_ms": round(connected - pressed, 1),
        "full_gathering_ms": round(gather_ms, 1),
    }


async def run(repeat: int) -> list[dict[str, Any]]:
    from playwright.async_api import async_playwright

    runs = []
    with hub() as (url, _), tempfile.TemporaryDirectory() as tmp:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
            try:
                for i in range(repeat):
                    result = await one_run(browser, url, Path(tmp))
                    print(f"browser_first_frame: run {i + 1}/{repeat}: {result}", file=sys.stderr)
                    runs.append(result)
            finally:
                await browser.close()
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.browser_first_frame")
    parser.add_argument("--repeat", type=int, default=7, help="calls to time (default 7)")
    parser.add_argument("--smoke", action="store_true", help="one call, for make test")
    parser.add_argument("--out", type=Path, help="result file (default bench/results/...)")
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        print(f"browser_first_frame: ignoring {' '.join(unknown)}", file=sys.stderr)
    repeat = 1 if args.smoke else args.repeat
    if repeat < 1:
        parser.error("--repeat: must be at least 1")
    if not CHROMIUM.exists():
        print(
            f"browser_first_frame: {CHROMIUM} is missing: apt-get install chromium", file=sys.stderr
        )
        return 1
    try:
        runs = asyncio.run(run(repeat))
    except BenchError as exc:
        print(f"browser_first_frame: {exc}", file=sys.stderr)
        return 1
    medians = {key: round(statistics.median(r[key] for r in runs), 1) for key in runs[0]}
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or RESULTS / f"browser-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": "browser_first_frame",
        "environment": environment(),
        "repeat": repeat,
        "runs": runs,
        "median": medians,
        "target": "first_frame_ms well under the full ICE gathering (~240 ms)",
    }
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(
        f"browser -> Python first frame: median {medians['first_frame_ms']} ms from Call "
        f"(browser connected at {medians['browser_connected_ms']} ms); a full ICE gathering "
        f"in the same page takes {medians['full_gathering_ms']} ms; {repeat} calls -> {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
