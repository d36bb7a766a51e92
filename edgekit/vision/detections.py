"""Detections of one frame as vectorised arrays (in the style of supervision's ``Detections``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional

import numpy as np


@dataclass
class Detections:
    xyxy: np.ndarray  # (N, 4) float32, pixel corners in the original frame
    confidence: np.ndarray  # (N,) float32
    class_id: np.ndarray  # (N,) int32
    tracker_id: Optional[np.ndarray] = None  # (N,) int64 track ids when a tracker set them (edgekit.vision.track)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.int32))

    def __len__(self) -> int:
        return len(self.class_id)

    def __getitem__(self, index) -> Detections:
        """Filter with a boolean mask, an index array or a slice."""
        tracker_id = None if self.tracker_id is None else self.tracker_id[index]
        return Detections(self.xyxy[index], self.confidence[index], self.class_id[index], tracker_id)

    def to_list(self, names: Optional[Mapping[int, str]] = None) -> List[Dict[str, Any]]:
        names = names or {}
        rows = [
            {
                "xyxy": [round(float(v), 2) for v in box],
                "confidence": round(float(conf), 4),
                "class_id": int(cid),
                "class_name": names.get(int(cid), str(int(cid))),
            }
            for box, conf, cid in zip(self.xyxy, self.confidence, self.class_id)
        ]
        if self.tracker_id is not None:
            for row, tid in zip(rows, self.tracker_id.tolist()):
                row["track_id"] = int(tid)
        return rows
