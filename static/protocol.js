// The wire contract in one place, with the same names as signaling/protocol.py,
// plus the page's own failure codes and the words a person reads for each.

export const Event = Object.freeze({
  WELCOME: "welcome",
  OFFER: "offer",
  JOIN: "join",
  ANSWER: "answer",
  CANDIDATE: "candidate",
  HANGUP: "hangup",
  ROOMS: "rooms",
  PEER_AWAY: "peer_away",
  PEER_BACK: "peer_back",
  BYE: "bye",
});

// Codes the hub puts in failure acks (error.code).
export const ErrorCode = Object.freeze({
  INVALID: "invalid",
  TOO_LARGE: "too_large",
  ROOM_BUSY: "room_busy",
  ROOM_FULL: "room_full",
  NOT_IN_ROOM: "not_in_room",
  WRONG_ROLE: "wrong_role",
  NO_PEER: "no_peer",
  LIMIT: "limit",
  UNAUTHORIZED: "unauthorized",
  UNKNOWN_EVENT: "unknown_event",
  STALE: "stale",
  UNAVAILABLE: "unavailable",
});

// Codes the page itself raises; they never travel on the wire.
export const PageError = Object.freeze({
  HUB_UNREACHABLE: "hub_unreachable",
  HUB_LOST: "hub_lost",
  TIMEOUT: "timeout",
  CAMERA_DENIED: "camera_denied",
  NO_DEVICE: "no_device",
  DEVICE_BUSY: "device_busy",
  MEDIA_FAILED: "media_failed",
  PEER_LEFT: "peer_left",
  EXPIRED: "expired",
  ICE_FAILED: "ice_failed",
  BAD_INPUT: "bad_input",
  CALL_FAILED: "call_failed",
});

export const HangupReason = Object.freeze({
  HANGUP: "hangup",
  PEER_LEFT: "peer_left",
  EXPIRED: "expired",
});

export const Role = Object.freeze({ CALLER: "caller", ANSWERER: "answerer" });

// Values of document.body.dataset.callState (the automation contract).
export const CallState = Object.freeze({
  IDLE: "idle",
  WAITING: "waiting",
  CONNECTING: "connecting",
  CONNECTED: "connected",
  RECONNECTING: "reconnecting",
  ENDED: "ended",
  FAILED: "failed",
});

export const CHAT_CHANNEL = "chat";
// A private room's name: 16 random bytes (128 bits), base64url, 22 characters.
export const PRIVATE_ROOM_BYTES = 16;

/** An unguessable room name; room names are the only secret, so this one is strong. */
export function newPrivateRoom() {
  const bytes = crypto.getRandomValues(new Uint8Array(PRIVATE_ROOM_BYTES));
  const b64 = btoa(String.fromCharCode(...bytes));
  return b64.replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** The link that opens the page straight into answering in ``room``. */
export function answerLink(origin, room, token = "") {
  const params = new URLSearchParams({ room, role: "answerer", auto: "1" });
  if (token) params.set("token", token);
  return `${origin}/?${params}`;
}
export const ROOM_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
export const NAME_MAX_CHARS = 64;

const WORDS = {
  [ErrorCode.INVALID]: "The hub refused the request as malformed.",
  [ErrorCode.TOO_LARGE]: "The call description was too large for the hub.",
  [ErrorCode.ROOM_BUSY]:
    "Someone is already calling in this room. Pick another room, or answer their call.",
  [ErrorCode.ROOM_FULL]:
    "This room already has someone answering. A room holds one caller and one answerer.",
  [ErrorCode.NOT_IN_ROOM]: "The hub no longer knows this call; start again.",
  [ErrorCode.WRONG_ROLE]: "You are already the caller of this room; answer from another tab.",
  [ErrorCode.NO_PEER]: "Nobody has called in this room yet.",
  [ErrorCode.LIMIT]: "The hub's limit was reached; hang up other calls first.",
  [ErrorCode.UNAUTHORIZED]:
    "The hub needs an access token. Open the page with ?token=... in the address.",
  [ErrorCode.UNKNOWN_EVENT]: "The hub did not understand the request (version mismatch?).",
  [ErrorCode.STALE]: "The hub no longer remembers that request; start again.",
  [ErrorCode.UNAVAILABLE]: "The hub cannot reach its shared store right now; try again in a moment.",
  [PageError.HUB_UNREACHABLE]:
    "Can't reach the signaling hub. Is it running (make run)? Check the address.",
  [PageError.HUB_LOST]: "Lost the connection to the signaling hub; the call cannot continue.",
  [PageError.TIMEOUT]: "The hub did not reply in time.",
  [PageError.CAMERA_DENIED]:
    "Camera and microphone access was denied. Allow it in the browser's site settings. " +
    "You can still receive the other side's video.",
  [PageError.NO_DEVICE]:
    "No camera or microphone was found. You can still receive the other side's video.",
  [PageError.DEVICE_BUSY]:
    "The camera or microphone is in use by another program. You can still receive video.",
  [PageError.MEDIA_FAILED]: "The camera or microphone could not be started.",
  [PageError.PEER_LEFT]: "The other side left the call.",
  [PageError.EXPIRED]: "Nobody answered in time; the waiting call expired.",
  [PageError.ICE_FAILED]:
    "The network connection between you failed (ICE failed). A firewall may block it; " +
    "a TURN server would help.",
  [PageError.BAD_INPUT]: "Please check the room name.",
  [PageError.CALL_FAILED]: "The browser could not set up the call.",
};

/** Plain words for an error code; the hub's own message is kept as detail. */
export function describeError(code) {
  return WORDS[code] || `Something went wrong (${code}).`;
}

/** Why a room name is not accepted, or null when it is fine. */
export function checkRoom(room) {
  if (typeof room === "string" && ROOM_PATTERN.test(room)) return null;
  return "A room name is 1-64 characters of A-Z, a-z, 0-9, _ or -.";
}

/** Why a display name is not accepted, or null (empty means anonymous). */
export function checkName(name) {
  if (typeof name !== "string" || name.length <= NAME_MAX_CHARS) return null;
  return `A name is at most ${NAME_MAX_CHARS} characters.`;
}

/** A chat message as sent on the "chat" data channel (same shape as the Python peer). */
export function makeChat(text, from, ts = Date.now()) {
  return { type: "chat", text: String(text), from: String(from || ""), ts };
}

/** Parse one data-channel message; null when it is not a chat message. */
export function parseChat(data) {
  if (typeof data !== "string") return null;
  let msg;
  try {
    msg = JSON.parse(data);
  } catch {
    return null;
  }
  if (!msg || msg.type !== "chat" || typeof msg.text !== "string") return null;
  return {
    type: "chat",
    text: msg.text,
    from: typeof msg.from === "string" ? msg.from : "",
    ts: typeof msg.ts === "number" ? msg.ts : Date.now(),
  };
}

/** An error with a code from ErrorCode or PageError and an optional hub detail. */
export class CallError extends Error {
  constructor(code, detail = "") {
    super(describeError(code));
    this.name = "CallError";
    this.code = code;
    this.detail = detail;
  }
}
