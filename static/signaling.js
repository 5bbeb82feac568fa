// A thin client of the hub: one Socket.IO connection, ack-based requests that
// resolve to the ack's fields or reject with a CallError, and hub events.

import { io } from "/vendor/socket.io.esm.min.js";
import { CallError, ErrorCode, Event, PageError } from "./protocol.js";

const CONNECT_TIMEOUT_MS = 8000;
const REQUEST_TIMEOUT_MS = 10000;

export class Signaling extends EventTarget {
  constructor({ url = undefined, name = "", token = "" } = {}) {
    super();
    this.url = url;
    this.name = name;
    this.token = token;
    this.socket = null;
    this.welcome = null;
    this._closing = false;
  }

  get connected() {
    return Boolean(this.socket && this.socket.connected && this.welcome);
  }

  /** Connect and wait for `welcome`; rejects with hub_unreachable / unauthorized. */
  connect() {
    const auth = {};
    if (this.name) auth.name = this.name;
    if (this.token) auth.token = this.token;
    const socket = io(this.url, {
      auth,
      reconnection: false,
      timeout: CONNECT_TIMEOUT_MS,
      transports: ["websocket", "polling"],
    });
    this.socket = socket;
    this._closing = false;
    for (const ev of [Event.OFFER, Event.ANSWER, Event.CANDIDATE, Event.HANGUP, Event.ROOMS]) {
      socket.on(ev, (payload) => this._emitLocal(ev, payload));
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.close();
        reject(new CallError(PageError.HUB_UNREACHABLE, "no welcome from the hub"));
      }, CONNECT_TIMEOUT_MS + 1000);
      socket.once(Event.WELCOME, (welcome) => {
        clearTimeout(timer);
        this.welcome = welcome;
        socket.on("disconnect", (reason) => {
          this.welcome = null;
          if (!this._closing) this._emitLocal("lost", { reason });
        });
        resolve(welcome);
      });
      socket.once("connect_error", (err) => {
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

  /** Send one request with an ack; resolves to the ack on ok, else rejects. */
  async request(event, payload, timeoutMs = REQUEST_TIMEOUT_MS) {
    if (!this.socket || !this.socket.connected) {
      throw new CallError(PageError.HUB_LOST, `cannot send ${event}: not connected`);
    }
    // A lost connection must win over the request timer, whatever the timing: the
    // request fails with hub_lost the moment the socket disconnects.
    const socket = this.socket;
    let onLost = null;
    const lost = new Promise((resolve, reject) => {
      onLost = () =>
        reject(new CallError(PageError.HUB_LOST, `${event}: the connection was lost`));
      socket.once("disconnect", onLost);
    });
    let ack;
    try {
      ack = await Promise.race([socket.timeout(timeoutMs).emitWithAck(event, payload), lost]);
    } catch (err) {
      if (err instanceof CallError) throw err;
      if (!socket.connected) {
        throw new CallError(PageError.HUB_LOST, `${event}: the connection was lost`);
      }
      throw new CallError(PageError.TIMEOUT, `${event}: no reply within ${timeoutMs} ms`);
    } finally {
      socket.off("disconnect", onLost);
    }
    if (!ack || ack.ok !== true) {
      const error = (ack && ack.error) || {};
      throw new CallError(error.code || ErrorCode.INVALID, error.message || "");
    }
    return ack;
  }

  close() {
    this._closing = true;
    this.welcome = null;
    if (this.socket) this.socket.close();
    this.socket = null;
  }

  _emitLocal(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
