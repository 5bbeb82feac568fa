// A thin client of the hub: one Socket.IO connection, ack-based requests that
// resolve to the ack's fields or reject with a CallError, and hub events.
//
// Resume (contract v1.1): the Socket.IO client reconnects by itself (backoff with
// jitter) and presents the session and the highest room-event seq processed, so the
// hub replays what was missed and the call goes on. Requests are numbered; one whose
// ack never came is sent again after the resume (the hub answers a repeat from
// memory). Local events: "reconnecting", "resumed", "sessionlost" (the hub could not
// resume: its rooms are gone), "ready" (after every welcome) and "lost" (for good).

import { io } from "/vendor/socket.io.esm.min.js";
import { CallError, ErrorCode, Event, PageError } from "./protocol.js";

const CONNECT_TIMEOUT_MS = 8000;
const REQUEST_TIMEOUT_MS = 10000;
// TURN credentials this close to their expiry are re-fetched before they are used again
const TURN_REFRESH_MARGIN_S = 60;

/**
 * True when a TURN entry of `iceServers` carries TURN REST credentials
 * ("<unix expiry>:<id>") that expire within `marginS` seconds of `nowS`.
 */
export function turnExpiresSoon(iceServers, nowS, marginS = TURN_REFRESH_MARGIN_S) {
  return (iceServers || []).some((s) => {
    const m = /^(\d+):/.exec((s && s.username) || "");
    return m !== null && Number(m[1]) - nowS < marginS;
  });
}

const STORE_KEY = "p2pcall.session";
const ROOM_EVENTS = [
  Event.OFFER,
  Event.ANSWER,
  Event.CANDIDATE,
  Event.HANGUP,
  Event.PEER_AWAY,
  Event.PEER_BACK,
];

function store(value) {
  try {
    if (value) sessionStorage.setItem(STORE_KEY, JSON.stringify(value));
    else sessionStorage.removeItem(STORE_KEY);
  } catch {
    // private mode: the session lives in memory only
  }
}

function stored() {
  try {
    return JSON.parse(sessionStorage.getItem(STORE_KEY) || "null");
  } catch {
    return null;
  }
}

export class Signaling extends EventTarget {
  constructor({ url = undefined, name = "", token = "" } = {}) {
    super();
    this.url = url;
    this.name = name;
    this.token = token;
    this.socket = null;
    this.welcome = null;
    this.session = null;
    this.lastSeq = 0;
    this.resumes = 0;
    this._seq = 0;
    this._pending = new Map(); // request seq -> {event, body, resolve, reject, timer}
    this._closing = false;
    this._graceMs = 0;
  }

  get connected() {
    return Boolean(this.socket && this.socket.connected && this.welcome);
  }

  /** The hub's grace, from the last welcome (kept while the connection is down). */
  get graceMs() {
    return this._graceMs;
  }

  _auth() {
    const auth = {};
    if (this.name) auth.name = this.name;
    if (this.token) auth.token = this.token;
    // a reconnect (not a page load) resumes; sessionStorage keeps it across module state
    const saved = this.session ? stored() : null;
    if (saved && saved.session === this.session) {
      auth.session = saved.session;
      auth.lastSeq = saved.lastSeq || 0;
    }
    return auth;
  }

  _save() {
    store({ session: this.session, lastSeq: this.lastSeq });
  }

  /** Connect and wait for `welcome`; rejects with hub_unreachable / unauthorized. */
  connect() {
    store(null); // a fresh page never takes over a session (a duplicated tab copies storage)
    const socket = io(this.url, {
      auth: (cb) => cb(this._auth()),
      reconnection: true,
      reconnectionDelay: 500,
      reconnectionDelayMax: 4000,
      randomizationFactor: 0.5,
      timeout: CONNECT_TIMEOUT_MS,
      transports: ["websocket", "polling"],
    });
    this.socket = socket;
    this._closing = false;
    for (const ev of ROOM_EVENTS) {
      socket.on(ev, (payload) => {
        const seq = payload && payload.seq;
        if (Number.isInteger(seq)) {
          if (seq <= this.lastSeq) return; // already processed
          this.lastSeq = seq;
          this._save();
        }
        this._emitLocal(ev, payload);
      });
    }
    socket.on(Event.ROOMS, (payload) => this._emitLocal(Event.ROOMS, payload));
    socket.on(Event.WELCOME, (welcome) => this._onWelcome(welcome));
    socket.on("disconnect", (reason) => {
      if (this._closing || !this.welcome) return;
      this.welcome = null;
      if (reason === "io server disconnect") {
        // the hub closed this connection on purpose: another tab or connection took the
        // session over. Socket.IO does not reconnect after that.
        this._failPending();
        this._emitLocal("lost", { reason: "taken over" });
      } else {
        this._emitLocal("reconnecting", { reason });
      }
    });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.close();
        reject(new CallError(PageError.HUB_UNREACHABLE, "no welcome from the hub"));
      }, CONNECT_TIMEOUT_MS + 1000);
      this._firstWelcome = (welcome) => {
        clearTimeout(timer);
        resolve(welcome);
      };
      socket.once("connect_error", (err) => {
        if (this.welcome || this.session) return; // a reconnect attempt: it retries by itself
        clearTimeout(timer);
        socket.close();
        const refused = err && err.message;
        if (refused === ErrorCode.UNAUTHORIZED) {
          reject(new CallError(ErrorCode.UNAUTHORIZED, (err.data && err.data) || ""));
        } else if (refused === ErrorCode.INVALID) {
          reject(new CallError(ErrorCode.INVALID, String((err.data && err.data) || "")));
        } else {
          reject(new CallError(PageError.HUB_UNREACHABLE, String(refused || "")));
        }
      });
    });
  }

  _onWelcome(welcome) {
    const first = this.session === null;
    this.welcome = welcome;
    this._graceMs = Number((welcome.limits || {}).resumeGraceSeconds || 0) * 1000;
    if (first) {
      this.session = welcome.session || null;
      this.lastSeq = 0;
      this._save();
      this._firstWelcome(welcome);
    } else if (welcome.resumed) {
      this.resumes += 1;
      // re-send, in order, every request whose ack never came
      for (const [seq, entry] of [...this._pending].sort((a, b) => a[0] - b[0])) {
        this._send(seq, entry);
      }
      this._emitLocal("resumed", {});
    } else {
      this.session = welcome.session || null;
      this.lastSeq = 0;
      this._seq = 0;
      this._save();
      this._failPending();
      this._emitLocal("sessionlost", { reason: welcome.resumeError || "unknown" });
    }
    this._emitLocal("ready", { first, resumed: Boolean(welcome.resumed) });
  }

  _failPending() {
    const pending = [...this._pending.values()];
    this._pending.clear();
    for (const entry of pending) {
      clearTimeout(entry.timer);
      entry.reject(new CallError(PageError.HUB_LOST, `${entry.event}: the hub lost this call`));
    }
  }

  _send(seq, entry) {
    this.socket.emit(entry.event, entry.body, (ack) => {
      if (this._pending.get(seq) !== entry) return; // answered already, or given up
      this._pending.delete(seq);
      clearTimeout(entry.timer);
      entry.resolve(ack);
    });
  }

  /**
   * Send one numbered request; resolves to the ack on ok, else rejects. While the hub
   * connection is down the request waits for the resume (up to the hub's grace).
   */
  async request(event, payload, timeoutMs = REQUEST_TIMEOUT_MS) {
    if (!this.socket || this._closing || (!this.connected && !this.session)) {
      throw new CallError(PageError.HUB_LOST, `cannot send ${event}: not connected`);
    }
    if (!this.connected && !this.socket.active) {
      throw new CallError(PageError.HUB_LOST, `cannot send ${event}: not connected`);
    }
    const seq = ++this._seq;
    const wait = timeoutMs + (this.connected ? 0 : this.graceMs);
    const ack = await new Promise((resolve, reject) => {
      const entry = { event, body: { ...payload, seq }, resolve, reject, timer: null };
      entry.timer = setTimeout(() => {
        this._pending.delete(seq);
        // with the connection down when time is up, the lost connection is the cause
        reject(
          this.connected
            ? new CallError(PageError.TIMEOUT, `${event}: no reply within ${wait} ms`)
            : new CallError(PageError.HUB_LOST, `${event}: the connection to the hub was lost`),
        );
      }, wait);
      this._pending.set(seq, entry);
      if (this.connected) this._send(seq, entry);
    });
    if (!ack || ack.ok !== true) {
      const error = (ack && ack.error) || {};
      throw new CallError(error.code || ErrorCode.INVALID, error.message || "");
    }
    return ack;
  }

  /**
   * The iceServers to use for new TURN allocations: this connection's, or, when their
   * TURN credentials are about to expire, those of a fresh `welcome` (the hub mints new
   * credentials for every connect) from a short second connection of its own: no
   * session of ours, so it neither takes over nor ends the call's session. Falls back
   * to the current ones if the hub cannot be reached.
   */
  async freshIceServers() {
    const current = (this.welcome && this.welcome.iceServers) || [];
    if (!turnExpiresSoon(current, Date.now() / 1000)) return current;
    const auth = {};
    if (this.name) auth.name = this.name;
    if (this.token) auth.token = this.token;
    const probe = io(this.url, {
      auth,
      forceNew: true, // never share the call's connection
      reconnection: false,
      timeout: CONNECT_TIMEOUT_MS,
      transports: ["websocket", "polling"],
    });
    try {
      const welcome = await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("no welcome")), CONNECT_TIMEOUT_MS);
        probe.once(Event.WELCOME, (w) => {
          clearTimeout(timer);
          resolve(w);
        });
        probe.once("connect_error", (err) => {
          clearTimeout(timer);
          reject(err);
        });
      });
      return welcome.iceServers || current;
    } catch {
      return current;
    } finally {
      probe.close(); // a session in no room ends with its socket
    }
  }

  /** End the session at once (so nobody waits out a grace period) and disconnect. */
  close() {
    this._closing = true;
    if (this.socket && this.connected) this.socket.emit(Event.BYE, {});
    this.welcome = null;
    this._failPending();
    store(null);
    if (this.socket) this.socket.close();
    this.socket = null;
  }

  _emitLocal(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
