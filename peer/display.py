"""The ``--show`` window: remote video with a small local preview, through OpenCV.

Import this module before aiortc or PyAV: OpenCV's Qt window hangs in
``namedWindow`` when PyAV's bundled libraries were loaded first. The CLI does so
when ``--show`` is given; nothing else in the peer imports OpenCV's GUI.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np

from .sinks import LatestFrame

WINDOW = "p2pcall"
PREVIEW_SCALE = 4  # the local preview is 1/4 of the window width


class Display(threading.Thread):
    """The ``--show`` window: remote video with a small local preview in a corner.

    All OpenCV GUI calls happen on this one thread; frames are converted to BGR
    here too, so the event loop only ever swaps a reference.
    """

    def __init__(self, remote: LatestFrame, local: LatestFrame | None, title: str = WINDOW):
        super().__init__(name="display", daemon=True)
        self.remote = remote
        self.local = local
        self.title = title
        self.stopped = threading.Event()
        self.closed_by_user = threading.Event()
        self.shown = 0

    def run(self) -> None:
        cv2.namedWindow(self.title, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)
        cv2.moveWindow(self.title, 0, 0)
        canvas: np.ndarray | None = None
        preview: np.ndarray | None = None
        try:
            while not self.stopped.is_set():
                changed = False
                frame = self.remote.take()
                if frame is not None:
                    canvas = frame.to_ndarray(format="bgr24")
                    changed = True
                if self.local is not None and (mine := self.local.take()) is not None:
                    preview = mine.to_ndarray(format="bgr24")
                    changed = True
                if changed:
                    cv2.imshow(self.title, self._compose(canvas, preview))
                    self.shown += 1
                if cv2.waitKey(10) in (27, ord("q")):
                    self.closed_by_user.set()
        finally:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)

    @staticmethod
    def _compose(canvas: np.ndarray | None, preview: np.ndarray | None) -> np.ndarray:
        if canvas is None:
            canvas = np.zeros((240, 320, 3), np.uint8)
            cv2.putText(canvas, "waiting for video", (20, 120), 0, 0.6, (255, 255, 255))
        else:
            canvas = canvas.copy()
        if preview is not None:
            height, width = canvas.shape[:2]
            pw = max(width // PREVIEW_SCALE, 2)
            ph = max(pw * preview.shape[0] // preview.shape[1], 2)
            if ph < height:
                small = cv2.resize(preview, (pw, ph), interpolation=cv2.INTER_AREA)
                canvas[height - ph :, width - pw :] = small
        return canvas

    def stop(self) -> None:
        self.stopped.set()
        self.join(5)
