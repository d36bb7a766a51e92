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

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.int32))

    def __len__(self) -> int:
        return len(self.class_id)

    def __getitem__(self, index) -> Detections:
        """Filter with a boolean mask, an index array or a slice."""
        return Detections(self.xyxy[index], self.confidence[index], self.class_id[index])

    def to_list(self, names: Optional[Mapping[int, str]] = None) -> List[Dict[str, Any]]:
        names = names or {}
        return [
            {
                "xyxy": [round(float(v), 2) for v in box],
                "confidence": round(float(conf), 4),
                "class_id": int(cid),
                "class_name": names.get(int(cid), str(int(cid))),
            }
            for box, conf, cid in zip(self.xyxy, self.confidence, self.class_id)
        ]
