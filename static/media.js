// Local media: camera and microphone, device lists and screen sharing, with
// every getUserMedia failure mapped to a page error code a person can read.

import { CallError, PageError } from "./protocol.js";

/** Map a getUserMedia DOMException to one of our codes. */
export function mediaErrorCode(err) {
  switch (err && err.name) {
    case "NotAllowedError":
    case "SecurityError":
    case "PermissionDeniedError":
      return PageError.CAMERA_DENIED;
    case "NotFoundError":
    case "DevicesNotFoundError":
    case "OverconstrainedError":
      return PageError.NO_DEVICE;
    case "NotReadableError":
    case "TrackStartError":
    case "AbortError":
      return PageError.DEVICE_BUSY;
    default:
      return PageError.MEDIA_FAILED;
  }
}

/**
 * Open camera and microphone. Falls back to whichever of the two works, so a
 * machine with a mic but no camera still sends audio. Throws CallError when
 * neither can be opened (the caller then offers a receive-only call).
 */
export async function openCamera({ videoId = "", audioId = "" } = {}) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new CallError(PageError.MEDIA_FAILED, "this page needs https or localhost for media");
  }
  const video = videoId ? { deviceId: { exact: videoId } } : true;
  const audio = audioId ? { deviceId: { exact: audioId } } : true;
  let firstError = null;
  for (const constraints of [{ video, audio }, { video }, { audio }]) {
    try {
      return await navigator.mediaDevices.getUserMedia(constraints);
    } catch (err) {
      firstError = firstError || err;
      if (mediaErrorCode(err) === PageError.CAMERA_DENIED) break;
    }
  }
  throw new CallError(mediaErrorCode(firstError), String(firstError && firstError.message));
}

/** Open one device of one kind, for swapping it into a running call. */
export async function openDevice(kind, deviceId) {
  try {
    const stream = await navigator.mediaDevices.getUserMedia({
      [kind]: deviceId ? { deviceId: { exact: deviceId } } : true,
    });
    return stream.getTracks()[0];
  } catch (err) {
    throw new CallError(mediaErrorCode(err), String(err && err.message));
  }
}

/** Cameras and microphones, labelled (labels appear once permission is granted). */
export async function listDevices() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) {
    return { cameras: [], mics: [] };
  }
  const devices = await navigator.mediaDevices.enumerateDevices();
  const pick = (kind, fallback) =>
    devices
      .filter((d) => d.kind === kind && d.deviceId)
      .map((d, i) => ({ id: d.deviceId, label: d.label || `${fallback} ${i + 1}` }));
  return { cameras: pick("videoinput", "Camera"), mics: pick("audioinput", "Microphone") };
}

/** Ask for a screen, window or tab; resolves to its video track. */
export async function openScreen() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getDisplayMedia) {
    throw new CallError(PageError.MEDIA_FAILED, "this browser cannot share the screen");
  }
  const stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
  return stream.getVideoTracks()[0];
}
