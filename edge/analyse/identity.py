"""Who a track is: face embeddings of its good samples against the gallery of known faces.

Per track, not per frame: a sample is embedded only when the face is large, sharp and frontal
enough (the scores `collect` uses) and at most every `identity.every_frames` frames. The name
is decided from the mean similarity over several samples (open set: it must reach the
threshold and beat the runner-up by a margin), and `unknown` is said only after enough good
samples matched nobody — never on the first blurry frame. A decided track takes no more
samples. With nobody enrolled, nothing is embedded at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from facelens.edge.analyse.base import AnalyserInfo, FaceSample, Verdict
from facelens.edge.analyse.gallery import GalleryWatch
from facelens.edge.config import Config, IdentityConfig
from facelens.edge.contract import EMBEDDING_TASK
from facelens.edge.events import UNKNOWN
from facelens.edge.runtime.embedder import Embedder
from facelens.edge.runtime.stock_models import open_configured


@dataclass
class IdentityState:
    sums: dict[str, float] = field(default_factory=dict)  # name -> sum of similarities
    samples: int = 0
    frame_no: int = -10**9
    decided: Verdict | None = None


class IdentityAnalyser:
    info = AnalyserInfo("identity", None)

    def __init__(self, cfg: IdentityConfig, embedder: Embedder, gallery: GalleryWatch) -> None:
        self.cfg, self.embedder, self.watch = cfg, embedder, gallery
        self.last_latency_ms = 0.0

    def start(self) -> IdentityState:
        return IdentityState()

    def wants(self, state: IdentityState, sample: FaceSample) -> bool:
        c = self.cfg
        if state.decided is not None or sample.frame_no - state.frame_no < c.every_frames:
            return False
        if not self.watch.refresh().people or len(sample.detection.keypoints) < 4:
            return False
        return (sample.size >= c.min_face_px and sample.frontality >= c.min_frontality
                and sample.sharpness >= c.min_sharpness)

    def take(self, state: IdentityState, sample: FaceSample) -> None:
        state.frame_no = sample.frame_no
        vector = self.embedder.embed(sample.image, sample.detection.keypoints)
        self.last_latency_ms = self.embedder.last_latency_ms
        for name, sim in self.watch.gallery.similarities(vector).items():
            state.sums[name] = state.sums.get(name, 0.0) + sim
        state.samples += 1
        state.decided = self._decide(state)

    def _decide(self, state: IdentityState) -> Verdict | None:
        c, n = self.cfg, state.samples
        means = sorted(((s / n, name) for name, s in state.sums.items()), reverse=True)
        if not means:
            return None
        best, name = means[0]
        second = means[1][0] if len(means) > 1 else -1.0
        evidence = {"samples": float(n)}
        if n >= c.min_samples and best >= c.threshold and best - second >= c.margin:
            return Verdict(name, round(best, 4), True, evidence)
        if (n >= c.unknown_samples and best < c.threshold) or n >= c.max_samples:
            return Verdict(UNKNOWN, round(best, 4), True, evidence)
        return None

    def verdict(self, state: IdentityState) -> Verdict:
        if state.decided is not None:
            return state.decided
        n = state.samples
        best = max(state.sums.values()) / n if n and state.sums else 0.0
        return Verdict(None, round(best, 4), False, {"samples": float(n)})

    def summary(self, state: IdentityState) -> str | None:
        return state.decided.label if state.decided else None

    def labels_now(self) -> tuple[str, ...]:
        """The names it can say now: the people enrolled (the gallery may change)."""
        return tuple(sorted(self.watch.refresh().people))

    def describe(self) -> str:
        people = len(self.watch.gallery.people)
        return (f"{self.embedder.name} on {self.embedder.backend}; {people} "
                f"{'person' if people == 1 else 'people'} enrolled")


def open_embedder(cfg: Config) -> Embedder | None:
    """The configured face-embedding model, or None when identity is off."""
    ic = cfg.identity
    if ic.model is None:
        return None
    return Embedder(open_configured("identity.model", ic.model, cfg.runtime,
                                    task=EMBEDDING_TASK))


def build(cfg: Config) -> list[IdentityAnalyser]:
    """On when `identity.model` names a model (the stock one by default)."""
    embedder = open_embedder(cfg)
    if embedder is None:
        return []
    watch = GalleryWatch(cfg.identity.gallery_path, embedder.manifest.sha256)
    return [IdentityAnalyser(cfg.identity, embedder, watch)]
