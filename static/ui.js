// The page's DOM: showing state, messages, the lobby, chat lines and stats.
// No call logic here; app.js decides, this module renders.

import { CallState, describeError } from "./protocol.js";
import { statsRows } from "./stats.js";

const $ = (id) => document.getElementById(id);

const STATE_WORDS = {
  [CallState.IDLE]: () => "Not in a call",
  [CallState.WAITING]: (ctx) =>
    ctx.role === "caller"
      ? `Waiting for someone to answer in room “${ctx.room}”`
      : `Waiting for a caller in room “${ctx.room}”`,
  [CallState.CONNECTING]: () => "Connecting…",
  [CallState.CONNECTED]: (ctx) => `Connected in room “${ctx.room}”`,
  [CallState.RECONNECTING]: (ctx) =>
    ctx.hubLink
      ? "Reconnecting to the hub… (the call goes on)"
      : "Connection interrupted, reconnecting…",
  [CallState.ENDED]: () => "Call ended",
  [CallState.FAILED]: () => "Call failed",
};

export const el = {
  get name() { return $("name"); },
  get room() { return $("room"); },
  get local() { return $("local"); },
  get remote() { return $("remote"); },
};

export function showState(state, ctx = {}) {
  document.body.dataset.callState = state;
  $("state-text").textContent = (STATE_WORDS[state] || (() => state))(ctx);
  const inCall = [
    CallState.WAITING,
    CallState.CONNECTING,
    CallState.CONNECTED,
    CallState.RECONNECTING,
  ].includes(state);
  $("hangup").disabled = !inCall;
  $("call").disabled = inCall;
  $("answer").disabled = inCall;
  $("room").disabled = inCall;
  $("name").disabled = inCall;
  for (const b of document.querySelectorAll(".lobby button")) b.disabled = inCall;
  if (!inCall) setChatOpen(false);
}

/** Show a failure (code + plain words) or a notice (text only); null clears. */
export function showMessage({ code = null, text = null, detail = "", kind = "error" } = {}) {
  const box = $("message");
  if (!code && !text) {
    box.hidden = true;
    box.textContent = "";
    delete document.body.dataset.error;
    return;
  }
  box.hidden = false;
  box.className = `message ${kind}`;
  box.textContent = "";
  const main = document.createElement("strong");
  main.textContent = text || describeError(code);
  box.append(main);
  if (detail) {
    const small = document.createElement("small");
    small.textContent = ` (${detail})`;
    box.append(small);
  }
  if (code && kind === "error") document.body.dataset.error = code;
  else delete document.body.dataset.error;
}

export function showMediaError(code) {
  if (code) document.body.dataset.mediaError = code;
  else delete document.body.dataset.mediaError;
}

export function renderLobby(rooms, onAnswer, disabled) {
  const list = $("lobby");
  list.textContent = "";
  for (const r of rooms) {
    const li = document.createElement("li");
    li.dataset.room = r.room;
    const who = document.createElement("span");
    // a clock time stays true between lobby pushes; a "waiting N s" count would not
    const since = new Date(Date.now() - (r.waitingSeconds || 0) * 1000);
    const at = since.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    who.textContent = `${r.caller || "Someone"} in “${r.room}” · since ${at}`;
    const btn = document.createElement("button");
    btn.type = "button";
    btn.textContent = "Answer";
    btn.setAttribute("aria-label", `Answer ${r.caller || "the caller"} in room ${r.room}`);
    btn.disabled = disabled;
    btn.addEventListener("click", () => onAnswer(r.room));
    li.append(who, btn);
    list.append(li);
  }
  $("lobby-empty").hidden = rooms.length > 0;
}

export function setLobbyOffline(offline, reconnecting = false) {
  $("lobby-empty").textContent = offline
    ? reconnecting
      ? "Reconnecting to the hub…"
      : "Not connected to the hub."
    : "Nobody is waiting right now.";
}

export function addChatLine(msg, mine) {
  const li = document.createElement("li");
  li.className = mine ? "mine" : "theirs";
  const who = document.createElement("span");
  who.className = "from";
  who.textContent = mine ? "You" : msg.from || "Them";
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = msg.text;
  li.append(who, text);
  const log = $("chat-log");
  log.append(li);
  log.scrollTop = log.scrollHeight;
}

export function setChatOpen(open) {
  $("chat-input").disabled = !open;
  $("chat-send").disabled = !open;
  $("chat-input").placeholder = open ? "Type a message" : "Chat opens once connected";
  if (open) document.body.dataset.chat = "open";
  else delete document.body.dataset.chat;
}

export function renderStats(summary) {
  const dl = $("stats");
  dl.textContent = "";
  for (const [label, value] of statsRows(summary)) {
    const dt = document.createElement("dt");
    dt.textContent = label;
    const dd = document.createElement("dd");
    dd.textContent = value;
    dl.append(dt, dd);
  }
}

export function fillSelect(select, devices, currentId) {
  select.textContent = "";
  for (const d of devices) {
    const opt = document.createElement("option");
    opt.value = d.id;
    opt.textContent = d.label;
    opt.selected = d.id === currentId;
    select.append(opt);
  }
  select.disabled = devices.length === 0;
}

export function setToggle(button, pressed, onText, offText) {
  button.setAttribute("aria-pressed", String(pressed));
  button.textContent = pressed ? onText : offText;
}

export function showRemote(stream) {
  const v = $("remote");
  if (v.srcObject !== stream) v.srcObject = stream;
  $("remote-placeholder").hidden = Boolean(stream);
  if (!stream) return;
  v.play().catch(() => {
    // autoplay with sound needs a click; play muted and offer to unmute
    v.muted = true;
    v.play().catch(() => {});
    $("unmute-remote").hidden = false;
  });
}

export function showLocal(stream) {
  const v = $("local");
  v.srcObject = stream;
  v.hidden = !stream;
}
