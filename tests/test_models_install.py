"""`facelens models install`: a verified model goes in and the config is switched to it; a
wrong or corrupt one is refused with the reason, and the model in service stays."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from facelens.edge.contract import ModelManifest
from tests.conftest import FACELENS

pytestmark = pytest.mark.timeout(120)


def facelens(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([*FACELENS, *args], capture_output=True, text=True, env=env,
                          timeout=90)


@pytest.fixture
def device(models_dir, tmp_path, cli_env):
    """A device: its models dir (the stock models), its config, and the environment."""
    served = tmp_path / "var-lib-facelens-models"
    shutil.copytree(models_dir, served)
    config = tmp_path / "config.toml"
    config.write_text('# the owner\'s config\n[source]\nuri = "0"  # the USB camera\n\n'
                      '[emotion]\nmodel = "emotion_mini_xception"\n')
    env = {k: v for k, v in cli_env.items() if k != "FACELENS_RUNTIME_MODELS_DIR"}
    env["FACELENS_RUNTIME_EDGETPU"] = "off"
    config.write_text(config.read_text() + f'\n[runtime]\nmodels_dir = "{served}"\n')
    return served, config, env


@pytest.fixture
def new_model(models_dir, tmp_path):
    """A 'retrained' emotion model from a workstation: a file and its manifest, elsewhere."""
    out = tmp_path / "from-workstation"
    out.mkdir()
    stock = ModelManifest.load(models_dir / "emotion_mini_xception.json")
    shutil.copy(models_dir / stock.file, out / "emotion_v2.tflite")
    stock.model_copy(update={"name": "emotion_v2", "file": "emotion_v2.tflite"}).save(
        out / "emotion_v2.json")
    return out / "emotion_v2.tflite"


def test_install_copies_verifies_and_switches_the_config(device, new_model):
    served, config, env = device
    out = facelens("models", "install", str(new_model), "--config", str(config), env=env)
    assert out.returncode == 0, out.stderr
    assert "installed emotion_v2 (emotion, 7 labels" in out.stdout
    assert f"{config}: emotion.model = 'emotion_v2'" in out.stdout
    assert "sudo systemctl restart facelens" in out.stdout
    assert (served / "emotion_v2.tflite").is_file() and (served / "emotion_v2.json").is_file()
    text = config.read_text()
    assert 'model = "emotion_v2"' in text and "# the owner's config" in text
    assert 'uri = "0"  # the USB camera' in text  # every other line kept
    check = facelens("check", "--config", str(config), "--source", str(new_model.parent),
                     env=env)
    assert "emotion: emotion_v2 on ai-edge-litert" in check.stdout, check.stderr
    again = facelens("models", "install", str(new_model), "--config", str(config), env=env)
    assert again.returncode == 0 and "already has emotion.model = 'emotion_v2'" in again.stdout


def test_a_third_head_gets_its_own_table(device, new_model):
    _served, config, env = device
    manifest = ModelManifest.load(new_model.with_suffix(".json"))
    manifest.model_copy(update={"name": "mood_v1", "task": "mood"}).save(
        new_model.with_suffix(".json"))
    out = facelens("models", "install", str(new_model), "--config", str(config), env=env)
    assert out.returncode == 0, out.stderr
    assert "[heads.mood]\nmodel = \"mood_v1\"" in config.read_text()


@pytest.mark.parametrize("damage, reason", [
    ("truncate", "has sha256"),
    ("no_manifest", "no manifest for"),
    ("wrong_shape", "takes input (1, 64, 64, 1), but manifest 'emotion_v2' says (1, 48, 48, 1)"),
    ("steal_file", "is the file of model 'emotion_mini_xception'"),
])
def test_a_wrong_or_corrupt_model_is_refused_and_nothing_changes(device, new_model, damage,
                                                                 reason):
    served, config, env = device
    manifest_path = new_model.with_suffix(".json")
    manifest = ModelManifest.load(manifest_path)
    if damage == "truncate":
        new_model.write_bytes(new_model.read_bytes()[:-100])
    elif damage == "no_manifest":
        manifest_path.unlink()
    elif damage == "wrong_shape":
        spec = manifest.input.model_copy(update={"height": 48, "width": 48})
        manifest.model_copy(update={"input": spec}).save(manifest_path)
    elif damage == "steal_file":  # would overwrite the serving model's file with another
        manifest.model_copy(update={"file": "emotion_model_quantized.tflite",
                                    "sha256": "0" * 64}).save(manifest_path)
        new_model.write_bytes(new_model.read_bytes() + b"\0")
        from facelens.edge.contract import sha256_file

        m = ModelManifest.load(manifest_path)
        m.model_copy(update={"sha256": sha256_file(new_model)}).save(manifest_path)
    before_config = config.read_text()
    before_files = sorted((p.name, p.read_bytes()) for p in served.iterdir())
    out = facelens("models", "install", str(new_model), "--config", str(config), env=env)
    assert out.returncode == 3, out.stdout + out.stderr
    last = out.stderr.strip().splitlines()[-1]  # (LiteRT may log a line of its own first)
    assert last.startswith("facelens: model error: ") and reason in last, out.stderr
    assert config.read_text() == before_config
    assert sorted((p.name, p.read_bytes()) for p in served.iterdir()) == before_files
    check = facelens("check", "--config", str(config), "--source", str(new_model.parent),
                     env=env)
    assert "emotion: emotion_mini_xception on" in check.stdout  # the old one still serves


# -- run as root into a directory the service's user owns: nothing else may change -----------
def _tree(folder) -> list[tuple[str, bytes, int, int, int]]:
    """Every file under `folder` with its content, owner, group and mode."""
    out = []
    for p in sorted(folder.rglob("*")):
        st = p.lstat()
        data = p.read_bytes() if p.is_file() and not p.is_symlink() else b""
        out.append((str(p.relative_to(folder)), data, st.st_uid, st.st_gid, st.st_mode))
    return out


@pytest.fixture
def service_owned(device):
    """The models directory handed to another user (as install.sh gives it to `facelens`)."""
    import os

    served, config, env = device
    if os.geteuid() != 0:
        pytest.skip("these cases are about an install run as root")
    for p in [served, *served.iterdir()]:
        os.chown(p, 65534, 65534)
    return served, config, env


@pytest.mark.parametrize("field, value, reason", [
    ("file", "ABS", "manifest"),  # an absolute path: the outside file, by name
    ("file", "../../cron-x", "not a plain file name"),
    ("file", "../outside.tflite", "not a plain file name"),
    ("name", "../../evil", "name: String should match pattern"),
    ("name", "sub/evil", "name: String should match pattern"),
    ("file", "blazeface_full_range.json", "named like a manifest"),
    ("name", "blazeface_full_range", "is taken by the face_detection model"),
])
def test_names_that_reach_outside_or_take_another_models_place_are_refused(
        service_owned, new_model, tmp_path, field, value, reason):
    _served, config, env = service_owned
    outside = tmp_path / "outside"
    outside.mkdir()
    value = str(outside / "cron-x") if value == "ABS" else value
    manifest_path = new_model.with_suffix(".json")
    data = json.loads(manifest_path.read_text())
    data[field] = value
    manifest_path.write_text(json.dumps(data))
    before = _tree(tmp_path)
    out = facelens("models", "install", str(new_model), "--config", str(config), env=env)
    assert out.returncode == 3, out.stdout + out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("facelens: model error: ") and (reason in last or field in last), last
    assert _tree(tmp_path) == before  # nothing written, nothing changed, anywhere


def test_planted_symlinks_redirect_nothing(service_owned, new_model, tmp_path):
    """The service's user plants links where an install writes: a root-owned 0600 file must
    keep its content, owner and mode, and the installed files are plain files."""
    import os

    served, config, env = service_owned
    victim = tmp_path / "root-only"
    victim.write_bytes(b"root's secret\n")
    victim.chmod(0o600)
    for name in (".emotion_v2.tflite.part", ".emotion_v2.json.part", "emotion_v2.tflite",
                 "emotion_v2.json"):
        (served / name).symlink_to(victim)
        os.lchown(served / name, 65534, 65534)
    out = facelens("models", "install", str(new_model), "--config", str(config), env=env)
    assert out.returncode == 0, out.stderr
    st = victim.stat()
    assert victim.read_bytes() == b"root's secret\n"
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, 0, 0o600)
    for name in ("emotion_v2.tflite", "emotion_v2.json"):
        p = served / name
        assert p.is_file() and not p.is_symlink()
        assert (p.stat().st_uid, p.stat().st_mode & 0o777) == (65534, 0o640)
    assert (served / "emotion_v2.tflite").read_bytes() == new_model.read_bytes()
