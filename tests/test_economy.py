"""The frame economy on real-photo video: motion that ignores noise and light, regions that
still find every visitor, no model run in an empty room, still faces kept."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from demo.scenes import astronaut, background, paste_face, room_camera_video
from facelens.edge.camera.motion import MotionDetector
from facelens.edge.camera.pipeline import Pipeline
from facelens.edge.camera.scan import Scanner, TrackHint, motion_regions
from facelens.edge.config import MotionConfig, ScanConfig
from facelens.edge.sources import FrameReader, open_source

pytestmark = pytest.mark.timeout(240)


def noisy(image: np.ndarray, rng: np.random.Generator, gain: float = 1.0) -> np.ndarray:
    return np.clip(image * gain + rng.normal(0, 2.5, image.shape), 0, 255).astype(np.uint8)


def test_motion_ignores_noise_and_drift_recalibrates_on_a_light_switch_and_sees_a_face():
    rng = np.random.default_rng(1)
    room = background().astype(np.float32)
    md = MotionDetector(MotionConfig())
    for i in range(100):  # sensor noise and a slow 6 % light drift
        m = md.update(noisy(room, rng, 1 + 0.06 * i / 100))
        assert m.boxes == [], f"frame {i}: noise or drift taken for motion"
    switched = md.update(noisy(room, rng, 1.3))  # the light switched on: followed at once
    assert switched.boxes == []
    assert md.update(noisy(room, rng, 1.3)).boxes == []
    moved = md.update(noisy(np.roll(room, 90, axis=1) * 1.3, rng))  # the camera was turned
    assert moved.recalibrated and moved.boxes == [] and moved.fraction >= 0.5
    assert md.update(noisy(np.roll(room, 90, axis=1) * 1.3, rng)).boxes == []
    room = np.roll(room, 90, axis=1)
    canvas = (room * 1.3).clip(0, 255).astype(np.uint8)
    box = paste_face(canvas, astronaut(), 300, 200, 40)
    seen = md.update(noisy(canvas, rng))
    assert seen.boxes and any(b[0] <= box[0] + 5 and b[2] >= box[2] - 5 and
                              b[1] <= box[1] + 5 and b[3] >= box[3] - 5 for b in seen.boxes)


@pytest.mark.parametrize("long_alpha", [0.005, 0.0])
def test_the_spot_someone_left_is_not_motion(long_alpha):
    """Someone stands 4 s (the fast background learns them), then is gone: with the slow
    background the uncovered room is not motion from the first frame on; without it, the
    ghost is reported where they stood for more than a second."""
    rng = np.random.default_rng(3)
    room = background()
    md = MotionDetector(MotionConfig(long_alpha=long_alpha))
    for _ in range(20):
        md.update(noisy(room, rng))
    canvas = room.copy()
    box = paste_face(canvas, astronaut(), 300, 200, 60)
    arrived = [md.update(noisy(canvas, rng)) for _ in range(40)]
    assert arrived[0].boxes  # their arrival is motion
    after = [md.update(noisy(room, rng)).boxes for _ in range(15)]
    ghosts = [i for i, boxes in enumerate(after)
              if any(b[0] < box[2] and b[2] > box[0] and b[1] < box[3] and b[3] > box[1]
                     for b in boxes)]
    if long_alpha:
        assert ghosts == [], ghosts
    else:
        assert len(ghosts) >= 10, ghosts


def test_a_masked_area_never_counts():
    rng = np.random.default_rng(2)
    room = background()
    md = MotionDetector(MotionConfig(masks=[[(250, 150), (450, 150), (450, 350), (250, 350)]]))
    md.update(noisy(room, rng))
    canvas = room.copy()
    paste_face(canvas, astronaut(), 320, 220, 40)  # inside the mask
    assert md.update(noisy(canvas, rng)).boxes == []


def test_regions_are_squares_in_the_frame_and_large_motion_is_covered_whole_and_tiled():
    small = motion_regions((300, 200, 340, 240), 240, 640, 480)
    assert len(small) == 1
    x1, y1, x2, y2 = small[0]
    assert x2 - x1 == pytest.approx(y2 - y1) and x1 <= 300 and x2 >= 340
    big = motion_regions((0, 0, 600, 470), 240, 640, 480)
    assert len(big) > 4 and all(r[0] >= 0 and r[2] <= 640 and r[3] <= 480 for r in big)
    assert big[0][3] - big[0][1] == 480  # one square over all of it, for a large face
    # A person walking (a tall blob): the square over all of it, and its top only.
    body = motion_regions((300, 60, 380, 460), 240, 640, 480)
    assert len(body) == 2 and body[1][1] <= 60 and body[1][3] <= 60 + 240, body
    assert len(motion_regions((0, 100, 600, 300), 240, 640, 480)) > 4  # a wide blob: all


def test_a_still_face_is_refreshed_at_its_own_rate_not_every_frame():
    scanner = Scanner(ScanConfig(track_refresh_s=0.5), MotionConfig())
    rng = np.random.default_rng(3)
    room = background()
    hint = [TrackHint("t1", (300, 200, 360, 260), confirmed=True)]
    plans = [scanner.plan(noisy(room, rng), i / 10, hint) for i in range(21)]
    assert plans[0].full  # the start
    scanned = [i for i, p in enumerate(plans[1:], 1) if p.regions]
    assert scanned == [5, 10, 15, 20]  # every 0.5 s, never on the frames between


def run(pipeline: Pipeline, path) -> tuple[list, list[int]]:
    reader = FrameReader(open_source(str(path)))
    reader.start()
    events, runs = [], []
    while (frame := reader.get()) is not None:
        before = pipeline.economy.detector_runs
        events += pipeline.process(frame)
        runs.append(pipeline.economy.detector_runs - before)
    return events, runs


def test_an_empty_noisy_room_runs_no_model_after_the_first_scan(make_config, tmp_path):
    """Noise and drift only: one full scan at start, then none until the idle interval
    (nothing moved, so the frame is as that scan saw it)."""
    from demo.scenes import write_video

    rng = np.random.default_rng(4)
    room = background().astype(np.float32)
    frames = [noisy(room, rng, 1 + 0.05 * np.sin(i / 20)) for i in range(130)]
    write_video(tmp_path / "empty.avi", frames)
    cfg = make_config(scan={"idle_full_scan_interval_s": 12.0})
    events, runs = run(Pipeline(cfg), tmp_path / "empty.avi")
    assert events == []
    assert runs[0] == 7 and sum(runs[1:120]) == 0  # 3x2 tiles + whole frame, then nothing
    assert runs[120] == 7  # the idle full scan (12 s here; 60 s by default), every tile


def test_the_full_scan_looks_only_where_something_happened_until_the_idle_scan():
    """Something moved in the top-left corner only: the 10 s full scan runs the whole frame
    and the tiles over that corner; nothing moved after it, so the next scan waits for the
    idle interval, which runs every tile."""
    scanner = Scanner(ScanConfig(full_scan_interval_s=1.0, idle_full_scan_interval_s=3.0),
                      MotionConfig())
    rng = np.random.default_rng(5)
    room = background()
    plans = []
    for i in range(31):
        canvas = room.copy()
        if 3 <= i < 6:  # a small thing moving in the corner for 3 frames
            canvas[20 + 4 * i:60 + 4 * i, 20:60] = 255
        plans.append(scanner.plan(noisy(canvas, rng), i / 10, []))
    fulls = [i for i, p in enumerate(plans) if p.full]
    assert fulls == [0, 10, 30], fulls
    assert plans[0].where is None and plans[30].where is None  # every tile
    where = plans[10].where
    assert where and all(b[2] <= 100 and b[3] <= 120 for b in where), where
    # The detector runs the whole frame and only the tiles those boxes touch.
    from facelens.edge.detect.base import overlaps
    from facelens.edge.detect.blazeface import tile_windows

    tiles = tile_windows(640, 480, 3, 2, 0.25)[1:]
    touched = [t for t in tiles if any(overlaps(t.box, b) for b in where)]
    assert len(touched) == 1  # the top-left tile of six


def test_motion_that_stays_where_no_face_was_found_is_scanned_at_the_refresh_rate():
    """A flickering spot (a screen, a curtain) moves every frame in the same place: after
    one scan found no face there it is scanned every `track_refresh_s`, not every frame;
    something moving elsewhere is scanned at once."""
    scanner = Scanner(ScanConfig(track_refresh_s=0.5), MotionConfig())
    rng = np.random.default_rng(6)
    room = background()
    plans = []
    for i in range(26):
        canvas = room.copy()
        canvas[300:340, 400:440] = 255 if i % 2 else 0  # flicker from frame 1 on
        if i == 22:
            canvas[100:140, 100:140] = 255  # and once, something elsewhere
        plans.append(scanner.plan(noisy(canvas, rng), i / 10, []))
    scanned = [i for i, p in enumerate(plans[1:], 1)
               if any(r[0] <= 400 and r[2] >= 440 and r[1] <= 300 and r[3] >= 340
                      for r in p.regions)]
    assert scanned[:1] == [1] and len(scanned) <= 6, scanned  # 25 frames of flicker
    assert all(b - a >= 5 for a, b in itertools.pairwise(scanned)), scanned
    assert any(r[0] <= 100 and r[2] >= 140 for r in plans[22].regions)


def test_every_visitor_of_a_room_camera_is_announced_with_regions(make_config, tmp_path):
    video = room_camera_video(tmp_path / "room.avi", seconds=60, visitors=5, seed=7)
    pipeline = Pipeline(make_config())
    events, runs = run(pipeline, video.path)
    news = [e for e in events if e.type == "new"]
    announced = 0
    for v in video.visitors:
        hit = [e for e in news if any(
            abs((e.box[0] + e.box[2]) / 2 - (b[0] + b[2]) / 2) < (b[2] - b[0])
            and abs((e.box[1] + e.box[3]) / 2 - (b[1] + b[3]) / 2) < (b[3] - b[1])
            for b in v.boxes.values())]
        announced += bool(hit)
    assert announced == len(video.visitors), f"{announced} of {len(video.visitors)} announced"
    assert len(news) <= len(video.visitors) + 1  # at most one extra track
    # Far fewer model runs than a full scan (7) every frame.
    assert np.mean(runs) < 1.5, f"{np.mean(runs):.2f} detector runs per frame"


def test_economy_off_is_a_full_scan_every_frame(make_config, astronaut_clip):
    pipeline = Pipeline(make_config(motion={"enabled": False}))
    _, runs = run(pipeline, astronaut_clip.path)
    assert set(runs) == {7}


def test_a_swaying_face_is_followed_without_the_detector(make_config, tmp_path):
    """A visitor standing and swaying a few pixels: followed by template matching between
    refreshes, so the detector runs far less on the occupied frames, with the same track and
    events as without following."""
    from demo.scenes import astronaut, paste_face, write_video

    rng = np.random.default_rng(11)
    room = background().astype(np.float32)
    frames = []
    for i in range(100):
        canvas = noisy(room, rng)
        if 10 <= i < 70:  # 6 s of a face swaying ±3 px
            paste_face(canvas, astronaut(), 250 + round(3 * np.sin(i / 2)), 150, 90)
        frames.append(canvas)
    write_video(tmp_path / "sway.avi", frames)
    with_follow = Pipeline(make_config())
    events_a, runs_a = run(with_follow, tmp_path / "sway.avi")
    without = Pipeline(make_config(scan={"follow_min_score": 0}))
    events_b, runs_b = run(without, tmp_path / "sway.avi")
    for events in (events_a, events_b):  # one visitor, one track, either way
        assert events[0].type == "new" and events[-1].type == "end"
        assert sum(e.type == "new" for e in events) == 1
    occupied_a, occupied_b = np.mean(runs_a[15:70]), np.mean(runs_b[15:70])
    print(f"detector runs per occupied frame: {occupied_a:.2f} following, "
          f"{occupied_b:.2f} without; followed {with_follow.follower.followed} times")
    assert with_follow.follower is not None and with_follow.follower.followed > 20
    assert occupied_a < 0.6 * occupied_b
