"""The gallery of known faces: enrolled people's face embeddings, on the device only.

Embeddings are biometric data. They are kept in one JSON file (`identity.gallery_path`,
default faces.json in the state directory), mode 0600, owned like the directory it is in
(the service's user), written whole and renamed into place; never published, never logged.
No photo is kept. `remove` deletes a person's embeddings; deleting the file deletes all.
The file names the embedding model (its sha256): embeddings of another model mean nothing to
this one, so such a gallery is refused, not misread.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facelens.edge.errors import FaceLensError
from facelens.edge.events import UNKNOWN
from facelens.edge.files import owner_of, write_new

GALLERY_VERSION = 1
#: Names become MQTT payloads and Home Assistant trigger subtypes: letters, digits, '_' and
#: '-', starting with a letter, at most 32 characters; not a word FaceLens itself says.
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
RESERVED = frozenset({UNKNOWN, "none", "null", "nobody", "pending"})


class GalleryError(FaceLensError, ValueError):
    exit_code = 2
    kind = "gallery error"


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise GalleryError(f"name {name!r}: use a letter, then letters, digits, '_' or '-' "
                           "(at most 32): it becomes an MQTT and Home Assistant identifier")
    if name.lower() in RESERVED:
        raise GalleryError(f"name {name!r} is reserved (FaceLens says it itself)")
    return name


@dataclass
class Gallery:
    """People by name, each with one unit embedding per enrolled photo."""

    model_sha256: str
    people: dict[str, np.ndarray] = field(default_factory=dict)  # name -> N×D

    @classmethod
    def load(cls, path: Path, model_sha256: str) -> Gallery:
        """The gallery at `path`; an empty one if there is no file yet."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(model_sha256)
        except (OSError, ValueError) as exc:
            raise GalleryError(f"identity.gallery_path = '{path}': not a readable gallery: "
                               f"{exc}") from exc
        if not isinstance(data, dict) or data.get("version") != GALLERY_VERSION:
            raise GalleryError(f"identity.gallery_path = '{path}': not a FaceLens gallery "
                               f"(version {GALLERY_VERSION})")
        if data.get("model_sha256") != model_sha256:
            raise GalleryError(f"identity.gallery_path = '{path}' was enrolled with another "
                               "embedding model: enrol the people again (facelens faces add)")
        people = {}
        for name, rows in data.get("people", {}).items():
            arr = np.asarray(rows, np.float32)
            if arr.ndim != 2 or not len(arr):
                raise GalleryError(f"identity.gallery_path = '{path}': person {name!r} has "
                                   "no embeddings")
            people[check_name(name)] = arr
        return cls(model_sha256, people)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {"version": GALLERY_VERSION, "model_sha256": self.model_sha256,
                "people": {n: np.round(v, 6).tolist() for n, v in sorted(self.people.items())}}
        write_new(json.dumps(data).encode(), path, owner=owner_of(path.parent), mode=0o600)

    def add(self, name: str, embeddings: list[np.ndarray]) -> None:
        rows = np.stack(embeddings).astype(np.float32)
        old = self.people.get(check_name(name))
        self.people[name] = rows if old is None else np.concatenate([old, rows])

    def remove(self, name: str) -> None:
        if name not in self.people:
            raise GalleryError(f"nobody named {name!r} is enrolled (enrolled: "
                               f"{', '.join(sorted(self.people)) or 'nobody'})")
        del self.people[name]

    def similarities(self, embedding: np.ndarray) -> dict[str, float]:
        """Per person, the best cosine similarity of any of their photos to `embedding`."""
        return {name: float(np.max(rows @ embedding)) for name, rows in self.people.items()}


class GalleryWatch:
    """The gallery a running service uses, reloaded when its file changes (checked at most
    every `every_s`), so `facelens faces add` takes effect without a restart."""

    def __init__(self, path: Path, model_sha256: str, every_s: float = 2.0) -> None:
        import logging
        import time

        self.path, self.sha, self.every_s = path, model_sha256, every_s
        self._log = logging.getLogger(__name__)
        self._clock = time.monotonic
        self._checked = -1e9
        self._stamp: tuple[int, int] | None = None
        self.gallery = Gallery(model_sha256)
        self.refresh()

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def refresh(self) -> Gallery:
        now = self._clock()
        if now - self._checked < self.every_s:
            return self.gallery
        self._checked = now
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return self.gallery
        self._stamp = stamp
        try:
            self.gallery = Gallery.load(self.path, self.sha)
        except GalleryError as exc:
            self._log.error("%s; known faces are off until it is fixed", exc)
            self.gallery = Gallery(self.sha)
        else:
            self._log.info("known faces: %d people enrolled", len(self.gallery.people))
        return self.gallery
