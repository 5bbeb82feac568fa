"""The page's pure modules (protocol.js, stats.js), run in Chromium as the page loads them."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Page

from signaling.protocol import ErrorCode, Event
from tests.browser.conftest import OpenPage
from tests.browser.pages import page_url
from tests.conftest import HubProcess

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]


async def run(page: Page, module: str, body: str) -> Any:
    """Import ``/static/<module>`` as ``m`` and return ``body`` evaluated."""
    return await page.evaluate(
        f"async () => {{ const m = await import('/static/{module}'); return {body}; }}"
    )


async def test_protocol_module_matches_the_hub(
    hub_process: HubProcess, open_page: OpenPage
) -> None:
    page = await open_page(page_url(hub_process.url), "page")
    assert await run(page, "protocol.js", "m.Event") == {e.name: e.value for e in Event}
    assert await run(page, "protocol.js", "m.ErrorCode") == {e.name: e.value for e in ErrorCode}
    # every hub error code has its own words, not the generic fallback
    words = await run(
        page, "protocol.js", "Object.values(m.ErrorCode).map(c => m.describeError(c))"
    )
    assert not [w for w in words if w.startswith("Something went wrong")], words

    checks = await run(
        page,
        "protocol.js",
        "['demo_1-x', 'a b', '', 'x'.repeat(64), 'x'.repeat(65), 'é'].map(m.checkRoom)",
    )
    assert checks[0] is None and checks[3] is None
    assert all("1-64 characters" in c for c in (checks[1], checks[2], checks[4], checks[5]))

    parsed = await run(
        page,
        "protocol.js",
        """[
          m.parseChat('{"type":"chat","text":"hi","from":"Py","ts":5}'),
          m.parseChat('{"type":"chat","text":"no sender"}'),
          m.parseChat('not json'), m.parseChat('{"type":"other","text":"x"}'),
          m.parseChat('{"type":"chat","text":3}'), m.parseChat(new ArrayBuffer(2)),
          m.makeChat('yo', 'Ann', 7),
        ]""",
    )
    assert parsed[0] == {"type": "chat", "text": "hi", "from": "Py", "ts": 5}
    assert parsed[1]["from"] == "" and isinstance(parsed[1]["ts"], int)
    assert parsed[2:6] == [None, None, None, None]
    assert parsed[6] == {"type": "chat", "text": "yo", "from": "Ann", "ts": 7}


async def test_stats_summary(hub_process: HubProcess, open_page: OpenPage) -> None:
    page = await open_page(page_url(hub_process.url), "page")
    result = await run(
        page,
        "stats.js",
        """(() => {
          const report = (t, inBytes, outBytes, lost) => new Map([
            ['IV', {type: 'inbound-rtp', kind: 'video', timestamp: t, bytesReceived: inBytes,
                    packetsReceived: 990, packetsLost: lost, frameWidth: 640, frameHeight: 480,
                    framesPerSecond: 30, codecId: 'C'}],
            ['OV', {type: 'outbound-rtp', kind: 'video', timestamp: t, bytesSent: outBytes,
                    frameWidth: 320, frameHeight: 240, framesPerSecond: 15}],
            ['C', {type: 'codec', mimeType: 'video/VP8', timestamp: t}],
            ['T', {type: 'transport', selectedCandidatePairId: 'P', timestamp: t}],
            ['P', {type: 'candidate-pair', currentRoundTripTime: 0.0125, timestamp: t,
                   localCandidateId: 'L', remoteCandidateId: 'R'}],
            ['L', {type: 'local-candidate', candidateType: 'relay', protocol: 'udp',
                   relayProtocol: 'tcp', timestamp: t}],
            ['R', {type: 'remote-candidate', candidateType: 'srflx', protocol: 'udp',
                   timestamp: t}],
          ]);
          const first = m.summarize(report(1000, 0, 0, 0));
          const second = m.summarize(report(2000, 125000, 62500, 10), first.snapshot);
          return {first: first.summary, second: second.summary,
                  rows: m.statsRows(second.summary)};
        })()""",
    )
    assert result["first"]["inbound"]["kbps"] is None  # no rate from a single report
    second = result["second"]
    assert second["inbound"]["kbps"] == pytest.approx(1000)
    assert second["outbound"]["kbps"] == pytest.approx(500)
    assert second["inbound"]["lossPct"] == pytest.approx(1.0)
    assert second["rttMs"] == pytest.approx(12.5)
    rows = dict(result["rows"])
    assert rows["Receiving"] == "640\u00d7480 VP8"
    assert rows["Received bitrate"] == "1000 kbit/s"
    assert rows["Packet loss"] == "10 (1.0 %)"
    assert rows["Round trip"] == "12.5 ms"
    assert second["pair"] == {
        "local": "relay",
        "remote": "srflx",
        "protocol": "udp",
        "relayProtocol": "tcp",
    }
    assert rows["Route"] == "relay \u2192 srflx (udp, TURN over tcp)"
