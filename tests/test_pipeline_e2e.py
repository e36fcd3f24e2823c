"""End to end on videos made from real face photos, through the real models."""

from __future__ import annotations

import json
import subprocess

import numpy as np

from demo.scenes import room_video
from facelens.edge.camera.pipeline import Pipeline
from facelens.edge.detect.base import iou
from facelens.edge.sources import FrameReader, open_source
from tests.conftest import FACELENS


def test_face_found_where_it_is_and_not_where_it_is_absent(astronaut_clip, make_config):
    pipeline = Pipeline(make_config())
    reader = FrameReader(open_source(str(astronaut_clip.path)))
    reader.start()
    found = {}
    while (frame := reader.get()) is not None:
        found[frame.index] = pipeline.detector.detect(frame.image)
    reader.close()
    with_face = [i for i, faces in found.items() if faces]
    assert with_face == list(astronaut_clip.face_frames)
    assert all(len(found[i]) == 1 for i in astronaut_clip.face_frames)


def test_cli_run_prints_one_tracks_lifecycle(astronaut_clip, cli_env):
    out = subprocess.run([*FACELENS, "run", "--source", str(astronaut_clip.path)],
                         capture_output=True, text=True, env=cli_env, timeout=300)
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "new" and kinds[-1] == "end" and "update" in kinds
    assert len({e["track_id"] for e in events}) == 1
    assert [e["seq"] for e in events] == list(range(len(events)))
    new, end = events[0], events[-1]
    # The stock emotion model says the smiling astronaut is happy …
    assert new["emotion"]["label"] == "happy" and new["emotion"]["score"] > 0.9
    assert set(new["emotion"]["probabilities"]) == {"angry", "disgust", "fear", "happy", "sad",
                                                    "surprise", "neutral"}
    # … not while a cup hides her smile, and happy again after.
    updates = [e["emotion"]["label"] for e in events if e["type"] == "update"]
    assert updates[0] != "happy" and updates[-1] == "happy"
    # No authenticity model is configured: the field is null, not invented.
    assert all(e["authenticity"] is None for e in events)
    assert end["summary"]["dominant_emotion"] == "happy"
    assert end["summary"]["frames"] == len(astronaut_clip.face_frames)
    assert abs(end["summary"]["duration_s"] - (len(astronaut_clip.face_frames) - 1) / 10) < 0.05
    assert "authenticity: off" in out.stderr


def test_several_small_faces_are_tracked_separately(tmp_path, make_config):
    truth = room_video(tmp_path / "room.avi")
    pipeline = Pipeline(make_config())
    reader = FrameReader(open_source(str(tmp_path / "room.avi")))
    reader.start()
    events = []
    while (frame := reader.get()) is not None:
        events += pipeline.process(frame)
    reader.close()
    news = [e for e in events if e.type == "new"]
    ends = [e for e in events if e.type == "end"]
    assert len(news) == 4 and len(ends) == 4
    assert {e.track_id for e in news} == {e.track_id for e in ends}
    # Each track is one of the people, where that person was when the track started.
    frame_of_new = 2  # confirm_frames = 3: the third frame
    matched = {max(range(4), key=lambda k: iou(e.box, truth[frame_of_new][k])) for e in news}
    assert matched == {0, 1, 2, 3}
    for e in news:
        best = max(iou(e.box, t) for t in truth[frame_of_new])
        assert best > 0.3
    for e in ends:
        assert e.summary.frames >= 25  # followed through the clip, not split into pieces
    assert np.all([e.frame_size == (640, 480) for e in events])
