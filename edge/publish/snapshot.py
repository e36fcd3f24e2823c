"""JPEG snapshots of newly confirmed faces, for owners who turned `mqtt.snapshots` on.

Images leave the device only this way, and only when asked: off by default.
"""

from __future__ import annotations

import cv2

from facelens.edge.detect.base import crop
from facelens.edge.events import FaceEvent, Snapshot
from facelens.edge.sources.base import Frame


def snapshots(frame: Frame, events: list[FaceEvent], mode: str,
              margin: float) -> list[Snapshot]:
    """JPEGs for the `new` events of this frame: the face crop, or the whole frame."""
    out = []
    for e in events:
        if e.type != "new":
            continue
        image = frame.image if mode == "frame" else crop(frame.image, e.box, margin)
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        if ok:
            out.append(Snapshot(e.event_id, e.track_id, e.camera, jpeg.tobytes()))
    return out
