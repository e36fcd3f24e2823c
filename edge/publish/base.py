"""What every output does. The daemon hands each event, state change, stats report and
(when enabled) snapshot to every publisher; an output ignores what it has no place for."""

from __future__ import annotations

from facelens.edge.events import CameraState, FaceEvent, ServiceStats, Snapshot


class Publisher:
    def publish(self, event: FaceEvent) -> None:
        raise NotImplementedError

    def publish_state(self, state: CameraState) -> None:
        """The camera's present changed (faces, dominant emotion, fake present)."""

    def publish_stats(self, stats: ServiceStats) -> None:
        """Periodic health report."""

    def publish_snapshot(self, snapshot: Snapshot) -> None:
        """A JPEG of a new face; only sent when the owner enabled snapshots."""

    def close(self) -> None:
        """Flush and release; called once, on shutdown."""
