"""Known faces: how well the stock embedder tells people apart, and what it costs per frame.

    PYTHONPATH=. .venv/bin/python benchmarks/known_faces.py [--seconds 180]

Quality, on real photos of real people: @vladmandic/face-api 1.7.15's six demo group photos
(npm, sha256-pinned; 25 faces of at least 100 px, all of different people but one woman seen
in two photos, labelled by eye) and face_recognition 1.3.0's test images (PyPI sdist; five
photos of Barack Obama, two of them cropped, one of Joe Biden). Every face is aligned and
embedded exactly as the service does. Reported: verification ROC AUC over all pairs;
rank-1 identification with Obama enrolled from 2 photos and every other face as a probe;
the false-match rate at the default threshold (people never enrolled, each probed against
the gallery); ms per embedding on this CPU.

Cost: the room-camera video (benchmarks/frame_economy.py's, 15 visits of the astronaut and
the cameraman) through the pipeline with nobody enrolled and with both enrolled (from their
photos): CPU ms per frame of each, and how many visits were named right.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import itertools
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
FACE_API = ("https://registry.npmjs.org/@vladmandic/face-api/-/face-api-1.7.15.tgz",
            None)  # its sha256 is printed on the first run (no test uses this package)
SAME_ACROSS_PHOTOS = {("s1", 1), ("s3", 0)}  # the one woman in two group photos (by eye)


def face_api_photos(cache: Path) -> list[np.ndarray]:
    path = cache / "face-api-1.7.15.tgz"
    if not path.is_file():
        with urllib.request.urlopen(FACE_API[0], timeout=120) as r:
            path.write_bytes(r.read())
    print(f"face-api tarball sha256 {hashlib.sha256(path.read_bytes()).hexdigest()}")
    out = []
    with tarfile.open(path) as tf:
        for i in range(1, 7):
            member = tf.extractfile(f"package/demo/sample{i}.jpg")
            assert member is not None
            out.append(cv2.imdecode(np.frombuffer(io.BytesIO(member.read()).read(), np.uint8),
                                    cv2.IMREAD_COLOR))
    return out


def labelled_photos(cache: Path) -> dict[str, Path]:
    """face_recognition's test photos (tests/face_photos.py) plus its two cropped Obama
    photos, by file name."""
    from tests.face_photos import photos

    real = photos(cache)
    extra = cache / "face_photos"
    with tarfile.open(cache / "wheels" / "face_recognition-1.3.0.tar.gz") as tf:
        for n in ("obama_partial_face.jpg", "obama_partial_face2.jpg"):
            m = tf.extractfile(f"face_recognition-1.3.0/tests/test_images/{n}")
            assert m is not None
            (extra / n).write_bytes(m.read())
            real[n] = extra / n
    return real


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=180)
    args = ap.parse_args()
    from sklearn.metrics import roc_auc_score

    from demo.scenes import astronaut, cameraman, room_camera_video
    from facelens.edge.analyse.gallery import Gallery
    from facelens.edge.analyse.identity import open_embedder
    from facelens.edge.camera.pipeline import Pipeline
    from facelens.edge.config import load_config
    from facelens.edge.detect import DETECTORS
    from facelens.edge.detect.base import iou
    from facelens.edge.sources import FrameReader, open_source
    from tests.face_photos import read

    cache = ROOT / ".cache"
    models = cache / "models"
    base = {"runtime": {"models_dir": str(models), "edgetpu": "off"}}
    cfg = load_config(None, environ={}, overrides=base)
    detector = DETECTORS["blazeface"](cfg)
    embedder = open_embedder(cfg)
    assert embedder is not None
    threshold = cfg.identity.threshold

    faces: list[tuple[str, np.ndarray]] = []  # (identity label, embedding)
    ms: list[float] = []
    for i, image in enumerate(face_api_photos(cache / "wheels"), start=1):
        found = [f for f in detector.detect(image) if f.width >= 100]
        for k, f in enumerate(found):
            label = "woman-a" if (f"s{i}", k) in SAME_ACROSS_PHOTOS else f"s{i}_{k}"
            faces.append((label, embedder.embed(image, f.keypoints)))
            ms.append(embedder.last_latency_ms)
    real = labelled_photos(cache)
    obama = {}
    for name, path in real.items():
        image = read(path)
        f = max(detector.detect(image), key=lambda d: d.width)
        v = embedder.embed(image, f.keypoints)
        if name.startswith("obama"):
            obama[name] = v
        faces.append(("obama" if name.startswith("obama") else name, v))
    same, diff = [], []
    for (a, va), (b, vb) in itertools.combinations(faces, 2):
        (same if a == b else diff).append(float(va @ vb))
    auc = roc_auc_score([1] * len(same) + [0] * len(diff), same + diff)
    people = len({label for label, _ in faces})
    print(f"verification: {len(faces)} faces of {people} people; {len(same)} same-person and "
          f"{len(diff)} different-person pairs; ROC AUC {auc:.4f}; same-person similarity "
          f"{min(same):.3f}-{max(same):.3f}, different-person max {max(diff):.3f}")

    enrolled = np.stack([obama["obama.jpg"], obama["obama2.jpg"]])
    probes = [(n, v) for n, v in obama.items() if n not in ("obama.jpg", "obama2.jpg")]
    hits = sum(float(np.max(enrolled @ v)) >= threshold for _, v in probes)
    strangers = [v for label, v in faces if label != "obama"]
    false = sum(float(np.max(enrolled @ v)) >= threshold for v in strangers)
    print(f"identification (Obama enrolled from 2 photos, threshold {threshold:g}): "
          f"{hits}/{len(probes)} of his other photos matched; false matches "
          f"{false}/{len(strangers)} strangers ({false / len(strangers):.1%})")
    print(f"embedding: {np.median(ms):.2f} ms median on this CPU (n={len(ms)}, face and mirror "
          "in one batch of 2)")

    with tempfile.TemporaryDirectory() as tmp:
        video = room_camera_video(Path(tmp) / "room.avi", seconds=args.seconds)
        gallery = Gallery(embedder.manifest.sha256)
        for who, photo in (("astronaut", astronaut()), ("cameraman", cameraman())):
            f = max(detector.detect(photo.image), key=lambda d: d.width)
            gallery.add(who, [embedder.embed(photo.image, f.keypoints)])
        full = Path(tmp) / "faces.json"
        gallery.save(full)
        for label, path in (("nobody enrolled", Path(tmp) / "none.json"),
                            ("astronaut and cameraman enrolled", full)):
            c = load_config(None, environ={}, overrides={
                **base, "identity": {"gallery_path": str(path)}})
            pipeline = Pipeline(c)
            reader = FrameReader(open_source(str(video.path)))
            reader.start()
            events = []
            votes: dict[str, Counter] = {}
            frames, busy = 0, 0.0
            while (frame := reader.get()) is not None:
                t0 = time.process_time()
                events += pipeline.process(frame)
                busy += time.process_time() - t0
                for tr in pipeline.tracker.tracks:  # who each track really is (the truth)
                    for v in video.visitors:
                        if frames in v.boxes and iou(tr.box, v.boxes[frames]) > 0.3:
                            votes.setdefault(tr.track_id, Counter())[v.name] += 1
                frames += 1
            ends = [e for e in events if e.type == "end" and e.summary is not None]
            right = wrong = 0
            for e in ends:
                assert e.summary is not None
                truth = votes.get(e.track_id, Counter()).most_common(1)
                who = truth[0][0] if truth else "nobody"
                if e.summary.identity is not None:
                    right += e.summary.identity in who
                    wrong += e.summary.identity not in who
            print(f"room camera, {label}: {busy / frames * 1000:.2f} ms CPU per frame over "
                  f"{frames} frames (decoding excluded); identity "
                  f"{pipeline.times.mean().get('identity', 0.0):.2f} ms per frame; of "
                  f"{len(ends)} tracks {right} named right, {wrong} named wrong")


if __name__ == "__main__":
    main()
