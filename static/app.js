// The page's flow: read the URL, keep a hub connection for the lobby, open the
// camera, start and end calls, and wire the buttons. Automation contract:
// /?room=R&role=caller|answerer&auto=1[&name=N][&token=T] starts with no click;
// the call state is on document.body.dataset.callState.

import { Call } from "./call.js";
import { listDevices, openCamera, openDevice, openScreen } from "./media.js";
import {
  answerLink,
  CallError,
  CallState,
  checkName,
  checkRoom,
  Event,
  newPrivateRoom,
  PageError,
  Role,
} from "./protocol.js";
import { Signaling } from "./signaling.js";
import { summarize } from "./stats.js";
import * as ui from "./ui.js";

const params = new URLSearchParams(location.search);
const token = params.get("token") || "";
const $ = (id) => document.getElementById(id);

const page = {
  signaling: null,
  hubConnecting: null,
  call: null,
  stream: null, // camera + mic, or null for a receive-only call
  cameraTried: false,
  starting: false, // from a Call/Answer press until the hub took the offer or join
  screenTrack: null,
  lobby: [],
  statsTimer: null,
  statsPrev: null,
  privateRoom: null, // the room made by "New private room", kept out of the lobby
};

// Debug and automation handle: tests read frame counts and state from here.
const debug = {
  remoteFrames: 0,
  localFrames: 0,
  state: CallState.IDLE,
  history: [], // every state shown, in order, for tests that check whole histories
  error: null,
  chat: [],
  notices: [], // every notice shown, in order (hub link, the other side's link)
  peerAway: false,
  peerGone: false,
  hubResumes: 0,
  lobbyWatched: 0, // how many times the lobby was (re)subscribed: once per hub connection
  stats: null,
  get call() {
    return page.call;
  },
  sendChat: (text) => sendChat(text),
  hangup: () => hangup(),
  restartIce: () => page.call && page.call.restartIce(),
};
window.p2pcall = debug;

// -- hub ------------------------------------------------------------------

/** Connect (or reconnect under a new name) and watch the lobby. */
async function ensureHub(name) {
  if (page.signaling && page.signaling.connected && page.signaling.name === name) {
    return page.signaling;
  }
  const connecting = page.hubConnecting;
  // join a connect under way, unless its hub went away after welcoming it: its lobby
  // request then waits out the grace, and a click deserves a fresh try now
  const joinable = connecting && (connecting.sig.connected || !connecting.sig.session);
  if (joinable && connecting.name === name) {
    return connecting.promise;
  }
  if (page.signaling) page.signaling.close();
  const sig = new Signaling({ name, token });
  page.signaling = sig;
  sig.addEventListener(Event.ROOMS, (e) => updateLobby(e.detail.rooms || []));
  sig.addEventListener("lost", () => {
    ui.setLobbyOffline(true);
    updateLobby([]);
    if (!page.call || isOver(page.call.state)) ui.showMessage({ code: PageError.HUB_LOST });
  });
  sig.addEventListener("reconnecting", () => {
    ui.setLobbyOffline(true, true);
    updateLobby([]);
    if (!page.call || isOver(page.call.state)) {
      ui.showMessage({
        code: PageError.HUB_LOST,
        text: "Lost the connection to the signaling hub; reconnecting…",
      });
    }
  });
  // after every reconnect (resumed or not): the lobby comes back by itself
  sig.addEventListener("ready", async (e) => {
    if (e.detail.first || page.signaling !== sig || !sig.connected) return;
    if (e.detail.resumed) debug.hubResumes += 1;
    ui.setLobbyOffline(false);
    if (!page.call || isOver(page.call.state)) ui.showMessage();
    try {
      const ack = await sig.request(Event.ROOMS, { watch: true });
      updateLobby(ack.rooms || []);
      debug.lobbyWatched += 1;
    } catch {
      // dropped again: the next "ready" asks again
    }
  });
  const promise = (async () => {
    await sig.connect();
    ui.setLobbyOffline(false);
    const ack = await sig.request(Event.ROOMS, { watch: true });
    updateLobby(ack.rooms || []);
    debug.lobbyWatched += 1;
    return sig;
  })();
  page.hubConnecting = { name, sig, promise };
  try {
    return await promise;
  } finally {
    if (page.hubConnecting && page.hubConnecting.promise === promise) page.hubConnecting = null;
  }
}

function updateLobby(rooms) {
  page.lobby = rooms;
  ui.renderLobby(rooms, (room) => startCall(Role.ANSWERER, room), isInCall());
}

// -- media ----------------------------------------------------------------

async function startCamera() {
  page.cameraTried = true;
  try {
    const stream = await openCamera({
      videoId: $("camera-select").value,
      audioId: $("mic-select").value,
    });
    setStream(stream);
    ui.showMediaError(null);
    if (!isInCall()) ui.showMessage();
  } catch (err) {
    const code = err instanceof CallError ? err.code : PageError.MEDIA_FAILED;
    ui.showMediaError(code);
    ui.showMessage({ code, detail: err.detail || "", kind: "warning" });
  }
  await refreshDevices();
}

function setStream(stream) {
  if (page.stream && page.stream !== stream) {
    for (const t of page.stream.getTracks()) t.stop();
  }
  page.stream = stream;
  ui.showLocal(stream);
  $("start-camera").textContent = stream ? "Restart camera" : "Start camera";
  updateMediaButtons();
}

function updateMediaButtons() {
  const audio = page.stream && page.stream.getAudioTracks()[0];
  const video = page.stream && page.stream.getVideoTracks()[0];
  $("mute").disabled = !audio;
  $("camera-off").disabled = !video;
  $("share").disabled = !page.call || !video || isOver(page.call.state);
  ui.setToggle($("mute"), Boolean(audio && !audio.enabled), "Unmute mic", "Mute mic");
  ui.setToggle($("camera-off"), Boolean(video && !video.enabled), "Camera on", "Camera off");
  ui.setToggle($("share"), Boolean(page.screenTrack), "Stop sharing", "Share screen");
}

async function refreshDevices() {
  const { cameras, mics } = await listDevices();
  const current = (kind) => {
    const t = page.stream && page.stream.getTracks().find((x) => x.kind === kind);
    return t ? t.getSettings().deviceId : "";
  };
  ui.fillSelect($("camera-select"), cameras, current("video"));
  ui.fillSelect($("mic-select"), mics, current("audio"));
}

/** Swap camera or microphone, live in the call when there is one. */
async function switchDevice(kind, deviceId) {
  if (!page.stream) {
    await startCamera();
    return;
  }
  try {
    const track = await openDevice(kind, deviceId);
    const old = page.stream.getTracks().find((t) => t.kind === kind);
    if (old) {
      track.enabled = old.enabled;
      page.stream.removeTrack(old);
      old.stop();
    }
    page.stream.addTrack(track);
    if (page.call && !(kind === "video" && page.screenTrack)) {
      await page.call.replaceTrack(kind, track);
    }
    if (!page.screenTrack) ui.showLocal(page.stream);
  } catch (err) {
    ui.showMessage({ code: err.code || PageError.MEDIA_FAILED, detail: err.detail || "" });
  }
}

async function toggleShare() {
  if (page.screenTrack) {
    await stopShare();
    return;
  }
  try {
    const track = await openScreen();
    page.screenTrack = track;
    track.addEventListener("ended", () => stopShare());
    await page.call.replaceTrack("video", track);
    ui.showLocal(new MediaStream([track]));
  } catch (err) {
    page.screenTrack = null;
    if (err && err.name === "NotAllowedError") return; // the user cancelled the picker
    ui.showMessage({ text: "Screen sharing could not start.", detail: String(err.message || err) });
  }
  updateMediaButtons();
}

async function stopShare() {
  const track = page.screenTrack;
  if (!track) return;
  page.screenTrack = null;
  track.stop();
  const camera = page.stream && page.stream.getVideoTracks()[0];
  if (page.call && !isOver(page.call.state) && camera) {
    await page.call.replaceTrack("video", camera);
  }
  ui.showLocal(page.stream);
  updateMediaButtons();
}

// -- the call -------------------------------------------------------------

function isOver(state) {
  return state === CallState.ENDED || state === CallState.FAILED || state === CallState.IDLE;
}

function isInCall() {
  return Boolean(page.call && !isOver(page.call.state));
}

function setState(state, ctx) {
  if (debug.history[debug.history.length - 1] !== state) debug.history.push(state);
  debug.state = state;
  ui.showState(state, ctx);
  updateMediaButtons();
  for (const b of document.querySelectorAll(".lobby button")) b.disabled = isInCall();
}

async function startCall(role, roomArg) {
  if (isInCall() || page.starting) return;
  if (roomArg) ui.el.room.value = roomArg;
  const room = ui.el.room.value.trim();
  const name = ui.el.name.value.trim();
  const problem = checkRoom(room) || checkName(name);
  if (problem) {
    ui.showMessage({ code: PageError.BAD_INPUT, text: problem });
    ui.el.room.focus();
    return;
  }
  remember(name, room);
  ui.showMessage();
  debug.error = null;
  const ctx = { role, room };
  setState(CallState.CONNECTING, ctx);
  page.starting = true;
  try {
    if (!page.cameraTried) await startCamera();
    const sig = await ensureHub(name);
    const call = new Call({
      signaling: sig,
      room,
      role,
      stream: page.stream,
      iceServers: (sig.welcome && sig.welcome.iceServers) || [],
      iceTransportPolicy: ui.el.relayOnly.checked ? "relay" : "all",
      name: name || "browser",
      isPrivate: page.privateRoom === room,
    });
    page.call = call;
    wireCall(call, ctx);
    await call.start();
  } catch (err) {
    const code = err instanceof CallError ? err.code : PageError.CALL_FAILED;
    showFailure(code, err.detail || String(err.message || ""));
  } finally {
    page.starting = false;
  }
}

/** Call in a fresh unguessable room and show the link that answers it. */
async function startPrivateRoom() {
  if (isInCall() || page.starting) return;
  const room = newPrivateRoom();
  page.privateRoom = room;
  $("share-url").value = answerLink(location.origin, room, token);
  $("share-link").hidden = false;
  await startCall(Role.CALLER, room);
}

async function copyShareLink() {
  const input = $("share-url");
  input.select();
  try {
    await navigator.clipboard.writeText(input.value);
    $("copy-link").textContent = "Copied";
  } catch {
    $("copy-link").textContent = "Select and copy";
  }
}

function showFailure(code, detail) {
  debug.error = code;
  setState(CallState.FAILED, {});
  ui.showMessage({ code, detail });
}

function wireCall(call, ctx) {
  call.addEventListener("state", (e) => {
    if (page.call !== call) return;
    const { state, error, detail, hubLink = false } = e.detail;
    if (state === CallState.FAILED) {
      showFailure(error, detail);
    } else {
      setState(state, { ...ctx, hubLink });
      if (error) {
        debug.error = error;
        ui.showMessage({ code: error, detail });
      } else if (state === CallState.ENDED) {
        ui.showMessage({ text: detail || "The call ended.", kind: "info" });
      }
    }
    if (state === CallState.CONNECTED) startStats(call);
    if (isOver(state)) endCallUi();
  });
  call.addEventListener("track", (e) => ui.showRemote(e.detail));
  call.addEventListener("chatopen", () => ui.setChatOpen(true));
  call.addEventListener("chatclose", () => ui.setChatOpen(false));
  call.addEventListener("chat", (e) => {
    debug.chat.push({ ...e.detail, mine: false });
    ui.addChatLine(e.detail, false);
  });
  call.addEventListener("notice", (e) => {
    debug.notices.push(e.detail.text);
    debug.peerAway = call.peerAway;
    debug.peerGone = call.peerGone;
    ui.showMessage({ text: e.detail.text, kind: e.detail.kind });
  });
}

function endCallUi() {
  clearInterval(page.statsTimer);
  page.statsTimer = null;
  if (page.screenTrack) stopShare();
  ui.showRemote(null);
  ui.setChatOpen(false);
  updateMediaButtons();
}

async function hangup() {
  if (page.call) await page.call.hangup();
}

function sendChat(text) {
  const line = String(text).trim();
  if (!line || !page.call || !page.call.chatOpen) return false;
  const msg = page.call.sendChat(line);
  debug.chat.push({ ...msg, mine: true });
  ui.addChatLine(msg, true);
  return true;
}

function startStats(call) {
  clearInterval(page.statsTimer);
  page.statsPrev = null;
  const tick = async () => {
    if (page.call !== call || isOver(call.state)) return;
    const report = await call.pc.getStats();
    const { summary, snapshot } = summarize(report, page.statsPrev);
    page.statsPrev = snapshot;
    debug.stats = summary;
    ui.renderStats(summary);
  };
  tick();
  page.statsTimer = setInterval(tick, 1000);
}

// -- frames -----------------------------------------------------------------

function countFrames(video, key) {
  if (!("requestVideoFrameCallback" in HTMLVideoElement.prototype)) return;
  const onFrame = () => {
    debug[key] += 1;
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
}

// -- start-up -------------------------------------------------------------------

function remember(name, room) {
  try {
    localStorage.setItem("p2pcall.name", name);
    localStorage.setItem("p2pcall.room", room);
  } catch {
    // private mode: nothing to remember
  }
}

function recalled(key) {
  try {
    return localStorage.getItem(key) || "";
  } catch {
    return "";
  }
}

function wireControls() {
  $("join-form").addEventListener("submit", (e) => {
    e.preventDefault();
    startCall(Role.CALLER);
  });
  $("answer").addEventListener("click", () => startCall(Role.ANSWERER));
  $("new-private").addEventListener("click", () => startPrivateRoom());
  $("copy-link").addEventListener("click", () => copyShareLink());
  $("start-camera").addEventListener("click", () => startCamera());
  $("hangup").addEventListener("click", () => hangup());
  $("mute").addEventListener("click", () => {
    const t = page.stream && page.stream.getAudioTracks()[0];
    if (t) t.enabled = !t.enabled;
    updateMediaButtons();
  });
  $("camera-off").addEventListener("click", () => {
    const t = page.stream && page.stream.getVideoTracks()[0];
    if (t) t.enabled = !t.enabled;
    updateMediaButtons();
  });
  $("share").addEventListener("click", () => toggleShare());
  $("camera-select").addEventListener("change", (e) => switchDevice("video", e.target.value));
  $("mic-select").addEventListener("change", (e) => switchDevice("audio", e.target.value));
  $("chat-form").addEventListener("submit", (e) => {
    e.preventDefault();
    if (sendChat($("chat-input").value)) $("chat-input").value = "";
  });
  $("unmute-remote").addEventListener("click", () => {
    ui.el.remote.muted = false;
    ui.el.remote.play().catch(() => {});
    $("unmute-remote").hidden = true;
  });
  if (navigator.mediaDevices) {
    navigator.mediaDevices.addEventListener("devicechange", () => refreshDevices());
  }
  window.addEventListener("pagehide", () => {
    if (isInCall()) page.call.hangup();
    if (page.signaling) page.signaling.close(); // bye: nobody waits out a grace for us
  });
}

async function main() {
  ui.el.name.value = params.get("name") || recalled("p2pcall.name");
  ui.el.room.value = params.get("room") || recalled("p2pcall.room");
  ui.el.relayOnly.checked = params.get("relay") === "1";
  setState(CallState.IDLE, {});
  ui.showLocal(null);
  wireControls();
  countFrames(ui.el.remote, "remoteFrames");
  countFrames(ui.el.local, "localFrames");
  const role = params.get("role");
  // Inside a frame (which the hub's CSP forbids anyway) a foreign page could start a
  // call in this origin's name: there auto=1 waits for the user's own click.
  const framed = window.top !== window.self;
  if (params.get("auto") === "1" && framed) {
    ui.showMessage({
      code: PageError.BAD_INPUT,
      text: "This page is inside another site's frame: press Call or Answer to start.",
    });
  } else if (params.get("auto") === "1") {
    if (role !== Role.CALLER && role !== Role.ANSWERER) {
      ui.showMessage({
        code: PageError.BAD_INPUT,
        text: `auto=1 needs role=caller or role=answerer, got ${JSON.stringify(role)}.`,
      });
      return;
    }
    await startCall(role);
    return;
  }
  try {
    await ensureHub(ui.el.name.value.trim());
  } catch (err) {
    ui.setLobbyOffline(true);
    if (page.starting || isInCall()) return; // a call's own attempt reports for itself
    ui.showMessage({ code: err.code || PageError.HUB_UNREACHABLE, detail: err.detail || "" });
  }
}

main();
