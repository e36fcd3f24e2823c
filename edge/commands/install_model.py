"""`facelens models install`: put a trained model on the device, switched on, or refuse it.

The model is checked before anything changes: its manifest must describe exactly this file
(sha256), the runtime must load it with the manifest's tensor shapes, and its task must be one
the service has a place for (face_detection, or a head's name). Only then are the file and its
manifest copied into the models directory (owned like the directory, written whole and renamed
into place) and the config's entry for that task switched to it. A wrong or corrupt file
changes nothing: the model in service keeps serving.

It runs as root into a directory the service's user owns, so it trusts nothing in it: the
manifest's `name` and `file` are plain file names (the contract refuses anything else before a
byte is written), staging happens in a private directory of its own, and each file is written
through a descriptor from `mkstemp` (a new random name, O_EXCL: a planted symlink cannot
redirect it), owned and moded through that descriptor, then renamed over the destination
(which replaces a symlink there rather than following it). One model cannot take another's
files: a `name` already used by a model of another task, or a `file` that is another model's,
is refused.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from facelens.edge.config import ConfigError, load_config, model_key
from facelens.edge.contract import ManifestError, ModelManifest
from facelens.edge.files import write_new
from facelens.edge.runtime.interpreter import open_model


@dataclass(frozen=True)
class Installed:
    manifest: ModelManifest
    model_path: Path
    manifest_path: Path
    config_key: str
    config_changed: bool


def find_manifest_for(model: Path, manifest: Path | None) -> Path:
    """The manifest given, else MODEL.json beside MODEL.tflite."""
    if manifest is not None:
        return manifest
    beside = model.with_suffix(".json")
    if not beside.is_file():
        raise ManifestError(f"no manifest for {model}: expected {beside} (or pass --manifest; "
                            "facelens-train and facelens-convert write one beside the model)")
    return beside


def verify(model: Path, manifest_path: Path) -> tuple[ModelManifest, bytes]:
    """Everything the service would check at start, on a staged copy in a private directory
    (mkdtemp: 0700, ours): hash, runtime, shapes. Returns the bytes that were checked, which
    are the ones installed (the file is read once)."""
    manifest = ModelManifest.load(manifest_path)  # refuses names that are not plain
    try:
        data = model.read_bytes()
    except FileNotFoundError as exc:
        raise ManifestError(f"model file not found: {model}") from exc
    except OSError as exc:
        raise ManifestError(f"model file not readable: {model}: {exc.strerror}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != manifest.sha256:
        raise ManifestError(f"model file {model} has sha256 {digest}, but manifest "
                            f"{manifest.name!r} expects {manifest.sha256}: the file is corrupt "
                            "or not the model described")
    with tempfile.TemporaryDirectory(prefix="facelens-install-") as tmp:
        staged = Path(tmp)
        write_new(data, staged / manifest.file)
        manifest.save(staged / f"{manifest.name}.json")
        open_model(staged / f"{manifest.name}.json", edgetpu="off", num_threads=1)
    return manifest, data


def _place(data: bytes, dest: Path, like: Path) -> None:
    """Into the models directory, owned like the directory (the service's user reads the
    files; nobody else writes them)."""
    st = like.stat()
    write_new(data, dest, owner=(st.st_uid, st.st_gid), mode=0o640)


def switch_config(config: Path, table: str, name: str) -> bool:
    """Set `model = "<name>"` in [table] of the TOML file, keeping every other line; the result
    must load as a valid config before it replaces the file."""
    text = config.read_text() if config.exists() else ""
    line = f'model = "{name}"'
    header = re.compile(rf"^\s*\[{re.escape(table)}\]\s*(#.*)?$", re.M)
    m = header.search(text)
    if m is None:
        new = text.rstrip("\n") + ("\n\n" if text.strip() else "") + f"[{table}]\n{line}\n"
    else:
        start = m.end()
        nxt = re.compile(r"^\s*\[", re.M).search(text, start)
        end = nxt.start() if nxt else len(text)
        body = text[start:end]
        key = re.compile(r"^(\s*)model\s*=.*$", re.M)
        if key.search(body):
            body = key.sub(lambda k: f"{k.group(1)}{line}", body, count=1)
        else:
            body = "\n" + line + body
        new = text[:start] + body + text[end:]
    if new == text:
        return False
    with tempfile.TemporaryDirectory(prefix="facelens-config-") as tmp:
        trial = Path(tmp) / config.name
        trial.write_text(new)
        try:
            load_config(trial, environ={})
        except ConfigError as exc:
            raise ConfigError(f"switching {config} to {name!r} would make it invalid: "
                              f"{exc}") from exc
    st = config.stat() if config.exists() else None
    write_new(new.encode(), config, owner=(st.st_uid, st.st_gid) if st else None,
              mode=(st.st_mode & 0o777) if st else 0o640)
    return True


def install(model: Path, manifest_path: Path | None, models_dir: Path,
            config: Path | None) -> Installed:
    """Verify, copy into `models_dir`, and switch the config's entry for the model's task."""
    manifest_path = find_manifest_for(model, manifest_path)
    manifest, data = verify(model, manifest_path)
    table, key = model_key(manifest.task)
    models_dir.mkdir(parents=True, exist_ok=True)
    dest_model = models_dir / manifest.file
    dest_manifest = models_dir / f"{manifest.name}.json"
    for other in sorted(models_dir.glob("*.json")):
        try:
            used = ModelManifest.load(other)
        except ManifestError:
            continue
        if used.file == manifest.file and used.name != manifest.name \
                and used.sha256 != manifest.sha256:
            raise ManifestError(f"{dest_model} is the file of model {used.name!r} "
                                f"({other}); give this model's file another name in its "
                                "manifest so both can stay")
        if used.name == manifest.name and used.task != manifest.task:
            raise ManifestError(f"name {manifest.name!r} is taken by the {used.task} model "
                                f"({other}); give this {manifest.task} model another name so "
                                "both can stay")
    _place(data, dest_model, models_dir)
    _place((manifest.model_dump_json(indent=2, exclude_none=True) + "\n").encode(),
           dest_manifest, models_dir)
    changed = switch_config(config, table, manifest.name) if config is not None else False
    return Installed(manifest, dest_model, dest_manifest, key, changed)
