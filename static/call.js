// One call: an RTCPeerConnection as caller or answerer, driven by the hub.
//
// Either party may arrive first. Candidates trickle both ways, end-of-candidates
// (null) included; our own wait until our description has been accepted by the
// hub (it refuses them before), the remote ones until the remote description is
// set. Every incoming signaling message runs on one chain so an offer, its
// candidates and a later renegotiation are applied in the order they came.

import {
  CallError,
  CallState,
  CHAT_CHANNEL,
  Event,
  HangupReason,
  makeChat,
  PageError,
  parseChat,
  Role,
} from "./protocol.js";

const ANSWERER_RESTART_WAIT_MS = 15000;
// Local events of the Signaling client about the hub link (no room field).
const LINK_EVENTS = ["lost", "reconnecting", "resumed", "sessionlost"];

export class Call extends EventTarget {
  constructor({
    signaling,
    room,
    role,
    stream = null,
    iceServers = [],
    iceTransportPolicy = "all",
    name = "",
    isPrivate = false,
  }) {
    super();
    this.isPrivate = isPrivate; // a private room's offer is kept out of the lobby
    this.signaling = signaling;
    this.room = room;
    this.role = role;
    this.stream = stream;
    this.name = name;
    this.state = CallState.IDLE;
    this.error = null;
    this.remoteStream = new MediaStream();
    this.channel = null;
    this._outbox = [];
    this._canSend = false;
    this._inbox = [];
    this._chain = Promise.resolve();
    this._restarted = false;
    this._failTimer = null;
    this._listeners = [];
    this._beforeBlip = null; // the state to return to when the hub link is back
    this.peerAway = false;
    // the hub ended the other side's session (`peer_left`) while the media was connected
    this.peerGone = false;
    this._iceServers = iceServers;
    // "relay" keeps only TURN-relayed candidates: proves a TURN setup, hides host addresses
    this.pc = new RTCPeerConnection({ iceServers, iceTransportPolicy });
    this._wirePeerConnection();
    this._wireSignaling();
  }

  // -- public -----------------------------------------------------------

  async start() {
    try {
      if (this.role === Role.CALLER) await this._startCaller();
      else await this._startAnswerer();
    } catch (err) {
      this._fail(err);
    }
  }

  /** Leave the call and tell the other side; safe to call twice. */
  async hangup() {
    if (this._over()) return;
    this._setState(CallState.ENDED, null, "You hung up.");
    try {
      await this.signaling.request(Event.HANGUP, { room: this.room }, 3000);
    } catch {
      // the room may already be gone (the other side left first): nothing to undo
    }
    this._close();
  }

  /** Swap the outgoing track of one kind without renegotiating (device pick, screen share). */
  async replaceTrack(kind, track) {
    const sending = (t) => t.direction === "sendrecv" || t.direction === "sendonly";
    const t = this.pc.getTransceivers().find((t) => t.receiver.track.kind === kind && sending(t));
    if (t) await t.sender.replaceTrack(track);
  }

  /** Restart ICE (caller only: the contract lets only the caller offer). */
  async restartIce() {
    if (this.role !== Role.CALLER || this._over()) return;
    await this._useFreshIceServers();
    await this._enqueue(() => this._sendOffer(true));
  }

  /**
   * An ICE restart allocates new TURN relays, so it needs credentials that are still
   * valid: re-fetch them from the hub when ours are about to expire (see
   * Signaling.freshIceServers), and hand them to the connection before restarting.
   */
  async _useFreshIceServers() {
    let latest = null;
    try {
      latest = await this.signaling.freshIceServers();
    } catch {
      return; // restart with what we have; the hub may be away for a moment
    }
    if (!latest || latest === this._iceServers || this._over()) return;
    this._iceServers = latest;
    this.pc.setConfiguration({ ...this.pc.getConfiguration(), iceServers: latest });
  }

  get chatOpen() {
    return Boolean(this.channel && this.channel.readyState === "open");
  }

  sendChat(text) {
    if (!this.chatOpen) throw new Error("the chat is not open yet");
    const msg = makeChat(text, this.name);
    this.channel.send(JSON.stringify(msg));
    return msg;
  }

  // -- caller / answerer --------------------------------------------------

  async _startCaller() {
    this._attachChannel(this.pc.createDataChannel(CHAT_CHANNEL));
    for (const kind of ["audio", "video"]) {
      const track = this._localTrack(kind);
      if (track) this.pc.addTrack(track, this.stream);
      else this.pc.addTransceiver(kind, { direction: "recvonly" });
    }
    await this._sendOffer(false);
  }

  async _sendOffer(iceRestart) {
    this._canSend = false;
    const offer = await this.pc.createOffer({ iceRestart });
    await this.pc.setLocalDescription(offer);
    const ack = await this.signaling.request(Event.OFFER, {
      room: this.room,
      description: { type: "offer", sdp: this.pc.localDescription.sdp },
      ...(this.isPrivate ? { private: true } : {}),
    });
    if (!iceRestart) {
      this._setState(ack.held ? CallState.WAITING : CallState.CONNECTING);
    }
    this._flushOutbox();
  }

  async _startAnswerer() {
    const ack = await this.signaling.request(Event.JOIN, { room: this.room });
    if (ack.offer) {
      await this._enqueue(() => this._acceptOffer(ack.offer, ack.candidates || []));
    } else {
      this._setState(CallState.WAITING);
    }
  }

  async _acceptOffer(description, candidates) {
    if (this.state !== CallState.CONNECTED && this.state !== CallState.RECONNECTING) {
      this._setState(CallState.CONNECTING);
    }
    await this.pc.setRemoteDescription(description);
    this._attachLocalTracksToOffer();
    for (const c of candidates) await this._addRemoteCandidate(c);
    await this._drainInbox();
    const answer = await this.pc.createAnswer();
    await this.pc.setLocalDescription(answer);
    await this.signaling.request(Event.ANSWER, {
      room: this.room,
      description: { type: "answer", sdp: this.pc.localDescription.sdp },
    });
    this._flushOutbox();
  }

  /** Send our tracks on the offer's own m-lines: the answerer may not add new ones. */
  _attachLocalTracksToOffer() {
    for (const t of this.pc.getTransceivers()) {
      const track = this._localTrack(t.receiver.track.kind);
      if (!track || t.sender.track || t.mid === null || t.currentDirection === "stopped") continue;
      t.sender.replaceTrack(track);
      if (this.stream) t.sender.setStreams(this.stream);
      t.direction = "sendrecv";
    }
  }

  _localTrack(kind) {
    if (!this.stream) return null;
    return this.stream.getTracks().find((t) => t.kind === kind) || null;
  }

  // -- signaling in -----------------------------------------------------

  _wireSignaling() {
    const on = (type, fn) => {
      const handler = (e) => {
        const payload = e.detail || {};
        if (!LINK_EVENTS.includes(type) && payload.room !== this.room) return;
        if (this._over()) return;
        fn(payload);
      };
      this.signaling.addEventListener(type, handler);
      this._listeners.push([type, handler]);
    };
    on(Event.OFFER, (p) => {
      if (this.role !== Role.ANSWERER) return;
      this._enqueue(() => this._acceptOffer(p.description, p.candidates || []));
    });
    on(Event.ANSWER, (p) => {
      if (this.role !== Role.CALLER) return;
      this._enqueue(async () => {
        if (this.state === CallState.WAITING) this._setState(CallState.CONNECTING);
        await this.pc.setRemoteDescription(p.description);
        await this._drainInbox();
      });
    });
    on(Event.CANDIDATE, (p) => {
      this._enqueue(async () => {
        if (!this.pc.remoteDescription) this._inbox.push(p.candidate);
        else await this._addRemoteCandidate(p.candidate);
      });
    });
    on(Event.HANGUP, (p) => {
      if (p.reason === HangupReason.PEER_LEFT && this.pc.connectionState === "connected") {
        // peer_left ends the other side's signaling (it vanished, or its grace ran out
        // while its hub link was down), not its media: a hang-up comes as `hangup`. The
        // call goes on while the media flows; a peer really gone fails ICE consent.
        this.peerGone = true;
        this.peerAway = false;
        this._notice(
          "The other side's link to the hub is gone; the call goes on while its media flows.",
        );
        return;
      }
      if (p.reason === HangupReason.EXPIRED) {
        this._setState(CallState.ENDED, PageError.EXPIRED);
      } else if (p.reason === HangupReason.PEER_LEFT) {
        this._setState(CallState.ENDED, PageError.PEER_LEFT);
      } else {
        this._setState(CallState.ENDED, null, "The other side hung up.");
      }
      this._close();
    });
    on("lost", (p) => {
      this._beforeBlip = null;
      if (this.pc.connectionState === "connected") {
        this._setState(CallState.CONNECTED);
        const why =
          p.reason === "taken over"
            ? "This call's hub connection moved to another tab"
            : "Lost the signaling hub";
        this._notice(`${why}; the call goes on but cannot be re-established.`);
      } else {
        this._fail(new CallError(PageError.HUB_LOST));
      }
    });
    on("reconnecting", () => {
      if (this.state !== CallState.RECONNECTING) this._beforeBlip = this.state;
      this._setState(CallState.RECONNECTING, null, "", { hubLink: true });
      this._notice("Lost the connection to the hub; reconnecting…", "info");
    });
    on("resumed", () => {
      this._backFromBlip();
      this._notice("Reconnected to the hub; the call goes on.", "info");
    });
    on("sessionlost", () => {
      if (this.pc.connectionState === "connected") {
        this._backFromBlip();
        this._notice(
          "The hub restarted and no longer knows this call; the call goes on, " +
            "but cannot be re-established if the network changes.",
        );
      } else {
        this._fail(new CallError(PageError.HUB_LOST, "the hub restarted and lost this call"));
      }
    });
    on(Event.PEER_AWAY, () => {
      this.peerAway = true;
      this._notice("The other side's connection dropped; waiting for it to come back.", "info");
    });
    on(Event.PEER_BACK, () => {
      this.peerAway = false;
      this._notice("The other side is back.", "info");
    });
  }

  _backFromBlip() {
    const before = this._beforeBlip;
    this._beforeBlip = null;
    if (this.pc.connectionState === "connected") this._setState(CallState.CONNECTED);
    else if (before && before !== CallState.RECONNECTING) this._setState(before);
  }

  _enqueue(task) {
    this._chain = this._chain
      .then(() => (this._over() ? undefined : task()))
      .catch((err) => this._fail(err));
    return this._chain;
  }

  async _drainInbox() {
    const pending = this._inbox.splice(0);
    for (const c of pending) await this._addRemoteCandidate(c);
  }

  async _addRemoteCandidate(candidate) {
    try {
      // null (end-of-candidates) maps to the argument-less form
      if (candidate === null || candidate === undefined) await this.pc.addIceCandidate();
      else await this.pc.addIceCandidate(candidate);
    } catch (err) {
      // one bad candidate (e.g. an unresolvable mDNS name) must not end the call
      console.warn("candidate rejected", candidate, err);
    }
  }

  // -- signaling out ----------------------------------------------------

  _sendCandidate(candidate) {
    if (!this._canSend) {
      this._outbox.push(candidate);
      return;
    }
    this.signaling.request(Event.CANDIDATE, { room: this.room, candidate }).catch((err) => {
      if (!this._over()) console.warn("candidate not delivered", err);
    });
  }

  _flushOutbox() {
    this._canSend = true;
    for (const c of this._outbox.splice(0)) this._sendCandidate(c);
  }

  // -- the peer connection ----------------------------------------------

  _wirePeerConnection() {
    const pc = this.pc;
    pc.onicecandidate = (e) => {
      if (e.candidate && !e.candidate.candidate) return; // per-generation marker; null follows
      this._sendCandidate(e.candidate ? e.candidate.toJSON() : null);
    };
    pc.ontrack = (e) => {
      this.remoteStream.addTrack(e.track);
      this.dispatchEvent(new CustomEvent("track", { detail: this.remoteStream }));
    };
    pc.ondatachannel = (e) => {
      if (e.channel.label === CHAT_CHANNEL) this._attachChannel(e.channel);
    };
    pc.onconnectionstatechange = () => this._onConnectionState(pc.connectionState);
  }

  _onConnectionState(s) {
    if (this._over()) return;
    if (s === "connected") {
      clearTimeout(this._failTimer);
      this._restarted = false;
      this._setState(CallState.CONNECTED);
    } else if (s === "disconnected") {
      this._setState(CallState.RECONNECTING);
    } else if (s === "failed" && this.peerGone) {
      // nobody left on the hub to restart ICE with: the other side has gone
      this._setState(CallState.ENDED, PageError.PEER_LEFT);
      this._close();
    } else if (s === "failed") {
      if (this.role === Role.CALLER && !this._restarted) {
        this._restarted = true;
        this._setState(CallState.RECONNECTING);
        this.restartIce();
      } else if (this.role === Role.ANSWERER && !this._failTimer) {
        // the caller owns ICE restarts; give its new offer a chance to arrive
        this._setState(CallState.RECONNECTING);
        this._failTimer = setTimeout(() => {
          if (this.pc.connectionState !== "connected") {
            this._fail(new CallError(PageError.ICE_FAILED));
          }
        }, ANSWERER_RESTART_WAIT_MS);
      } else {
        this._fail(new CallError(PageError.ICE_FAILED));
      }
    }
  }

  _attachChannel(channel) {
    this.channel = channel;
    channel.onopen = () => this.dispatchEvent(new CustomEvent("chatopen"));
    channel.onclose = () => this.dispatchEvent(new CustomEvent("chatclose"));
    channel.onmessage = (e) => {
      const msg = parseChat(e.data);
      if (msg) this.dispatchEvent(new CustomEvent("chat", { detail: msg }));
    };
  }

  // -- state ------------------------------------------------------------

  _over() {
    return this.state === CallState.ENDED || this.state === CallState.FAILED;
  }

  _fail(err) {
    if (this._over()) return;
    const code = err instanceof CallError ? err.code : PageError.CALL_FAILED;
    const detail = err instanceof CallError ? err.detail : String(err && err.message);
    console.warn("call failed", code, detail);
    this._setState(CallState.FAILED, code, detail);
    if (code !== PageError.HUB_LOST) {
      this.signaling.request(Event.HANGUP, { room: this.room }, 3000).catch(() => {});
    }
    this._close();
  }

  _notice(text, kind = "warning") {
    this.dispatchEvent(new CustomEvent("notice", { detail: { text, kind } }));
  }

  /** `why.hubLink`: the state is about the link to the hub, not the media path. */
  _setState(state, error = null, detail = "", why = {}) {
    if (this.state === state && !error) return;
    this.state = state;
    this.error = error;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, error, detail, ...why } }));
  }

  _close() {
    clearTimeout(this._failTimer);
    for (const [type, handler] of this._listeners) {
      this.signaling.removeEventListener(type, handler);
    }
    this._listeners = [];
    if (this.channel) this.channel.close();
    this.pc.close();
  }
}
