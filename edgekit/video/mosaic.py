"""Several live streams as one picture: a grid of equal cells, each frame scaled to fit its cell (aspect kept,
letterboxed), for the desktop window and the web page's ``/mosaic.mjpg`` of a multi-source ``edgekit camera``.

It runs once per shown frame on a Jetson, so it is one ``cv2.resize`` per tile straight into the cell's view of a
buffer that is kept between calls; a stream without a frame yet is a dark cell with its label.
"""

from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

BACKGROUND = 24  # the grey of empty cells and letterbox bars
GAP = 2  # dark pixels between cells, so tiles of the same aspect stay told apart
DEFAULT_ASPECT = 9 / 16  # cell height / width before any frame has come


def grid(n: int, columns: Optional[int] = None) -> Tuple[int, int]:
    """(columns, rows) for ``n`` cells: ``ceil(sqrt(n))`` columns unless told (1, 2, 2, 2, 3, 3, 3, 3, 3, 4...)."""
    n = max(int(n), 1)
    cols = min(max(int(columns), 1), n) if columns else int(math.ceil(math.sqrt(n)))
    return cols, int(math.ceil(n / cols))


def cell_size(images: Sequence[Optional[np.ndarray]], width: int, cols: int) -> Tuple[int, int]:
    """(width, height) of one cell, gap included: the width shared out, the height such that the cell's inside
    has the first frame's aspect (frames of that aspect fill their cell, no bars)."""
    cell_w = max(width // cols, GAP + 2)
    first = next((im for im in images if im is not None and im.size), None)
    aspect = first.shape[0] / first.shape[1] if first is not None else DEFAULT_ASPECT
    return cell_w, max(int(round((cell_w - GAP) * aspect)), 2) + GAP


def tile(images: Sequence[Optional[np.ndarray]], width: int = 1280, columns: Optional[int] = None,
         labels: Optional[Sequence[str]] = None, out: Optional[np.ndarray] = None) -> np.ndarray:
    """One BGR uint8 image of ``images`` in a grid (row by row); None is a stream without a frame yet.

    The result is ``columns * (width // columns)`` wide (at most ``width``), and its cells take the aspect of the
    first frame. ``out``, when its shape fits, is drawn into and returned (no allocation): the caller that keeps it
    between calls reuses one buffer, and must copy the result to keep it past the next call. Grey frames
    (2-D) are taken too; frames are read, never changed.
    """
    cols, rows = grid(len(images), columns)
    cell_w, cell_h = cell_size(images, width, cols)
    shape = (rows * cell_h, cols * cell_w, 3)
    if out is None or out.shape != shape or out.dtype != np.uint8:
        out = np.full(shape, BACKGROUND, np.uint8)
    inner_w, inner_h = cell_w - GAP, cell_h - GAP
    for k in range(rows * cols):
        y, x = (k // cols) * cell_h, (k % cols) * cell_w
        out[y + inner_h:y + cell_h, x:x + cell_w] = 0  # the gap right and below the cell
        out[y:y + inner_h, x + inner_w:x + cell_w] = 0
        cell = out[y:y + inner_h, x:x + inner_w]
        image = images[k] if k < len(images) else None
        _fit(cell, image)
        label = labels[k] if labels is not None and k < len(labels) else None
        if label:
            draw_label(cell, label)
    return out


def _fit(cell: np.ndarray, image: Optional[np.ndarray]) -> None:
    """``image`` scaled into ``cell`` keeping its aspect, centred, the bars around it dark; None: a dark cell."""
    if image is None or not image.size:
        cell[:] = BACKGROUND
        return
    ch, cw = cell.shape[:2]
    h, w = image.shape[:2]
    scale = min(cw / w, ch / h)
    nw, nh = min(max(int(round(w * scale)), 1), cw), min(max(int(round(h * scale)), 1), ch)
    ox, oy = (cw - nw) // 2, (ch - nh) // 2
    cell[:oy] = BACKGROUND
    cell[oy + nh:] = BACKGROUND
    cell[oy:oy + nh, :ox] = BACKGROUND
    cell[oy:oy + nh, ox + nw:] = BACKGROUND
    view = cell[oy:oy + nh, ox:ox + nw]
    if image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 2 or image.shape[2] == 1:  # grey: resize, then spread to the three channels
        view[:] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR).reshape(nh, nw, 1)
    elif image.shape[:2] == (nh, nw):
        view[:] = image
    else:
        scaled = cv2.resize(image, (nw, nh), dst=view, interpolation=cv2.INTER_LINEAR)
        if scaled is not view:  # an OpenCV that would not write into the view: copy (same pixels)
            view[:] = scaled


def draw_label(cell: np.ndarray, text: str) -> None:
    """``text`` in the cell's top left corner, white on a black box, cut to the cell's width."""
    ch, cw = cell.shape[:2]
    scale = min(max(ch / 480.0, 0.4), 1.0)
    thick = 2 if scale >= 0.8 else 1
    pad = max(int(4 * scale), 2)
    font = cv2.FONT_HERSHEY_SIMPLEX
    text = text.encode("ascii", "replace").decode()  # Hershey fonts draw ASCII only
    (tw, th), base = cv2.getTextSize(text, font, scale, thick)
    if tw > cw - 2 * pad and len(text) > 3:  # cut to fit, with ".." to say so
        keep = max(int(len(text) * (cw - 2 * pad) / tw) - 2, 1)
        text = text[:keep] + ".."
        (tw, th), base = cv2.getTextSize(text, font, scale, thick)
    cv2.rectangle(cell, (0, 0), (min(tw + 2 * pad, cw - 1), min(th + base + 2 * pad, ch - 1)), (0, 0, 0), -1)
    cv2.putText(cell, text, (pad, pad + th), font, scale, (255, 255, 255), thick, cv2.LINE_AA)


class Mosaic:
    """The newest frame of each of ``n`` streams, tiled on demand: ``update(i, frame)`` per finished frame (a
    reference is kept: hand frames that are not drawn into afterwards), ``image()`` when the window redraws.

    ``image()`` reuses one buffer: the array it returns is overwritten by the next call.
    """

    def __init__(self, n: int, width: int = 1280, columns: Optional[int] = None,
                 labels: Optional[Sequence[str]] = None) -> None:
        if n < 1:
            raise ValueError("a mosaic needs at least one stream")
        self.width = width
        self.columns = columns
        self.labels: Optional[List[str]] = list(labels) if labels is not None else None
        self.frames: List[Optional[np.ndarray]] = [None] * n
        self.updates = 0
        self._out: Optional[np.ndarray] = None

    def update(self, i: int, frame: Optional[np.ndarray]) -> None:
        self.frames[i] = frame
        self.updates += 1

    def image(self, labels: Optional[Sequence[str]] = None) -> np.ndarray:
        """The grid now; ``labels`` (e.g. names with live FPS) replace the fixed ones for this call."""
        self._out = tile(self.frames, self.width, self.columns, labels if labels is not None else self.labels,
                         out=self._out)
        return self._out
