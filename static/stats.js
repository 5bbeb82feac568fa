// Turns getStats() reports into the few figures a person reads: resolution,
// fps, bitrate, packet loss and round-trip time. Pure: it takes the report and
// the previous snapshot and returns the summary plus the next snapshot, so the
// bitrate is a rate over the last interval, not a lifetime average.

function bySelectedPair(report) {
  let pair = null;
  report.forEach((s) => {
    if (s.type === "transport" && s.selectedCandidatePairId) {
      pair = report.get(s.selectedCandidatePairId) || pair;
    }
  });
  if (pair) return pair;
  report.forEach((s) => {
    if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") pair = pair || s;
  });
  return pair;
}

/** The selected pair's candidate types (host / srflx / prflx / relay), as the peer reports. */
function pairTypes(report, pair) {
  const local = report.get(pair.localCandidateId) || {};
  const remote = report.get(pair.remoteCandidateId) || {};
  return {
    local: local.candidateType || null,
    remote: remote.candidateType || null,
    protocol: local.protocol || null,
    relayProtocol: local.relayProtocol || null, // how we reach our TURN server
  };
}

function rate(bytes, prevBytes, ms) {
  if (prevBytes === undefined || !(ms > 0) || bytes < prevBytes) return null;
  return ((bytes - prevBytes) * 8) / ms; // kbit/s
}

/**
 * Summarize one report. `prev` is the snapshot returned by the last call (or null).
 * Returns {summary, snapshot}.
 */
export function summarize(report, prev = null) {
  const snap = { inBytes: 0, outBytes: 0, at: 0 };
  const summary = {
    inbound: null,
    outbound: null,
    rttMs: null,
    audioInKbps: null,
    pair: null,
  };
  let audioInBytes = 0;
  report.forEach((s) => {
    snap.at = Math.max(snap.at, s.timestamp || 0);
    if (s.type === "inbound-rtp" && s.kind === "video") {
      snap.inBytes += s.bytesReceived || 0;
      const received = s.packetsReceived || 0;
      const lost = Math.max(0, s.packetsLost || 0);
      summary.inbound = {
        width: s.frameWidth || 0,
        height: s.frameHeight || 0,
        fps: s.framesPerSecond || 0,
        framesDecoded: s.framesDecoded || 0,
        packetsLost: lost,
        lossPct: received + lost > 0 ? (100 * lost) / (received + lost) : 0,
        kbps: null,
        codec: codecName(report, s.codecId),
      };
    } else if (s.type === "outbound-rtp" && s.kind === "video") {
      snap.outBytes += s.bytesSent || 0;
      summary.outbound = {
        width: s.frameWidth || 0,
        height: s.frameHeight || 0,
        fps: s.framesPerSecond || 0,
        kbps: null,
        codec: codecName(report, s.codecId),
      };
    } else if (s.type === "inbound-rtp" && s.kind === "audio") {
      audioInBytes += s.bytesReceived || 0;
    }
  });
  snap.audioInBytes = audioInBytes;
  const pair = bySelectedPair(report);
  if (pair && typeof pair.currentRoundTripTime === "number") {
    summary.rttMs = pair.currentRoundTripTime * 1000;
  }
  summary.pair = pair ? pairTypes(report, pair) : null;
  if (prev) {
    const ms = snap.at - prev.at;
    if (summary.inbound) summary.inbound.kbps = rate(snap.inBytes, prev.inBytes, ms);
    if (summary.outbound) summary.outbound.kbps = rate(snap.outBytes, prev.outBytes, ms);
    summary.audioInKbps = rate(audioInBytes, prev.audioInBytes, ms);
  }
  return { summary, snapshot: snap };
}

function codecName(report, codecId) {
  const codec = codecId && report.get(codecId);
  return codec && codec.mimeType ? codec.mimeType.replace(/^video\//, "") : "";
}

const num = (v, digits = 0) => (v === null || v === undefined ? "–" : v.toFixed(digits));

/** Rows of [label, value] for the stats panel. */
export function statsRows(summary) {
  const i = summary.inbound;
  const o = summary.outbound;
  return [
    ["Receiving", i && i.width ? `${i.width}×${i.height} ${i.codec}` : "–"],
    ["Received fps", i ? num(i.fps) : "–"],
    ["Received bitrate", i && i.kbps !== null ? `${num(i.kbps)} kbit/s` : "–"],
    ["Packet loss", i ? `${i.packetsLost} (${num(i.lossPct, 1)} %)` : "–"],
    ["Sending", o && o.width ? `${o.width}×${o.height} @ ${num(o.fps)} fps` : "–"],
    ["Sent bitrate", o && o.kbps !== null ? `${num(o.kbps)} kbit/s` : "–"],
    ["Round trip", summary.rttMs !== null ? `${num(summary.rttMs, 1)} ms` : "–"],
    ["Route", routeText(summary.pair)],
  ];
}

/** "relay → relay (udp, TURN over tcp)": how the media flows, local side first. */
export function routeText(pair) {
  if (!pair || !pair.local) return "–";
  const via = pair.relayProtocol ? `, TURN over ${pair.relayProtocol}` : "";
  return `${pair.local} → ${pair.remote || "?"} (${pair.protocol || "?"}${via})`;
}
