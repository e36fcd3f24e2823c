"""What every output does. The daemon hands each event, state change, stats report and
(when enabled) snapshot to every publisher; an output ignores what it has no place for."""

from __future__ import annotations

from facelens.edge.events import (
    CameraHealth,
    CameraState,
    FaceEvent,
    FrameView,
    OutputHealth,
    ServiceStats,
    Snapshot,
)


class Publisher:
    """An output. Built from the config (nothing connects or listens yet), `start`ed by the
    daemon once everything is built, fed, then `close`d once."""

    def start(self) -> None:
        """Connect, listen, start threads: the side effects, after construction."""

    def publish(self, event: FaceEvent) -> None:
        raise NotImplementedError

    def publish_state(self, state: CameraState) -> None:
        """The camera's present changed (faces, dominant emotion, fake present)."""

    def health(self) -> OutputHealth:
        """This output's part of the health report (ServiceStats fields, e.g. the outbox
        depth); the daemon puts every output's part into the one report all of them get."""
        return {}

    def publish_stats(self, stats: ServiceStats) -> None:
        """Periodic health report."""

    def publish_labels(self, analyser: str, labels: tuple[str, ...]) -> None:
        """An analyser with open labels (identity: the enrolled people) has these now; sent
        once a second, so outputs that list them (Home Assistant discovery) can follow."""

    def publish_camera(self, camera: str, health: CameraHealth) -> None:
        """The camera's health, once a second, for outputs that show it live (the page): a
        stalled or reconnecting camera should not wait for the next stats report."""

    @property
    def wants_frames(self) -> bool:
        """Whether this output shows pictures right now (the live page with a viewer): only
        then does the daemon build a FrameView for it."""
        return False

    def publish_frame(self, view: FrameView) -> None:
        """A processed frame with what the pipeline saw; must return at once."""

    def publish_snapshot(self, snapshot: Snapshot) -> None:
        """A JPEG of a new face; only sent when the owner enabled snapshots."""

    def close(self) -> None:
        """Flush and release; called once, on shutdown."""
