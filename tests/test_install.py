"""install.sh for real, in fresh Debian bookworm roots made with debootstrap: amd64, and
arm64 under qemu-user emulation (what a Pi 4/5 runs). Install, check everything it made,
install again and see nothing change, process a real-face video as the service user, then
uninstall and purge.

Needs root, debootstrap and (for arm64) qemu-user-static with binfmt_misc; .ci/run installs
them. Base roots are cached in .cache/roots, keyed on the architecture and package list.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.conftest import CACHE, ROOT

INCLUDE = ["ca-certificates"]
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root"),
    pytest.mark.skipif(shutil.which("debootstrap") is None, reason="debootstrap not installed"),
    # debootstrap, pip installs and, for arm64, the daemon under qemu emulation
    pytest.mark.timeout(2400),
]


def mirror() -> str:
    """The Debian mirror the host's own apt sources name."""
    for path in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]:
        try:
            text = path.read_text()
        except OSError:
            continue
        for word in text.split():
            if word.startswith("http") and word.rstrip("/").endswith("/debian"):
                return word
    return "http://deb.debian.org/debian"


def qemu_ready() -> bool:
    if shutil.which("qemu-aarch64-static") is None:
        return False
    binfmt = Path("/proc/sys/fs/binfmt_misc")
    if not (binfmt / "register").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(binfmt)],
                       capture_output=True)
    if not (binfmt / "qemu-aarch64").exists():
        subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], capture_output=True)
    return (binfmt / "qemu-aarch64").exists()


def base_root(arch: str, include: tuple[str, ...] = ()) -> Path:
    """A cached tarball of `debootstrap --variant=minbase bookworm` for `arch`, with INCLUDE
    and `include` (e.g. systemd and dbus for a root that boots)."""
    packages = [*INCLUDE, *include]
    key = hashlib.sha256(f"{arch} {' '.join(packages)} {mirror()}".encode()).hexdigest()[:12]
    tarball = CACHE / "roots" / f"bookworm-{arch}-{key}.tar"
    if tarball.exists():
        return tarball
    tarball.parent.mkdir(parents=True, exist_ok=True)
    work = tarball.with_suffix(".d")
    shutil.rmtree(work, ignore_errors=True)
    cmd = ["debootstrap", "--variant=minbase", f"--arch={arch}",
           f"--include={','.join(packages)}", "bookworm", str(work), mirror()]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    with tarfile.open(tarball.with_suffix(".tmp"), "w") as tar:
        tar.add(work, arcname=".")
    tarball.with_suffix(".tmp").rename(tarball)
    shutil.rmtree(work, ignore_errors=True)
    return tarball


class Root:
    """An unpacked root with /proc and /dev mounted (never /sys: LiteRT under qemu crashes
    with the host's /sys), the host's CA bundle (TLS here is intercepted) and DNS."""

    def __init__(self, tarball: Path, path: Path, emulated: bool = False) -> None:
        self.path = path
        self.emulated = emulated
        with tarfile.open(tarball) as tar:
            tar.extractall(path, filter="fully_trusted")
        (path / "etc/ssl/host").mkdir(parents=True, exist_ok=True)
        shutil.copy("/etc/ssl/certs/ca-certificates.crt", path / "etc/ssl/host/ca.pem")
        shutil.copy("/etc/resolv.conf", path / "etc/resolv.conf")
        subprocess.run(["mount", "-t", "proc", "proc", str(path / "proc")], check=True)
        subprocess.run(["mount", "--bind", "/dev", str(path / "dev")], check=True)

    def env(self) -> dict[str, str]:
        ca = "/etc/ssl/host/ca.pem"
        return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8",
                "PIP_CERT": ca, "REQUESTS_CA_BUNDLE": ca, "SSL_CERT_FILE": ca}

    def install(self, *args: str, timeout: float = 2400) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(ROOT / "install.sh"), "--root", str(self.path),
                               *args], capture_output=True, text=True, env=self.env(),
                              timeout=timeout)

    def run(self, *cmd: str, user: str | None = None, env: dict | None = None,
            timeout: float = 1200) -> subprocess.CompletedProcess:
        spec = ["--userspec", f"{user}:{user}"] if user else []
        return subprocess.run(["chroot", *spec, str(self.path), *cmd], capture_output=True,
                              text=True, env={**self.env(), **(env or {})}, timeout=timeout)

    def snapshot(self) -> list[str]:
        """Every file FaceLens could touch: path, size, mtime, owner, mode."""
        out = []
        for top in ("etc", "opt", "var/lib/facelens"):
            for p in sorted((self.path / top).rglob("*")):
                if p.is_symlink() or not p.exists():
                    out.append(f"{p} -> {os.readlink(p) if p.is_symlink() else ''}")
                    continue
                st = p.stat()
                out.append(f"{p} {st.st_size} {st.st_mtime_ns} {st.st_uid} {oct(st.st_mode)}")
        return out

    def unmount(self) -> None:
        for mount in ("dev", "proc"):
            subprocess.run(["umount", "-l", str(self.path / mount)], capture_output=True)

    def close(self) -> None:
        self.unmount()
        shutil.rmtree(self.path, ignore_errors=True)


@pytest.fixture(params=["amd64", "arm64"])
def root(request, tmp_path_factory):
    arch = request.param
    host = subprocess.run(["dpkg", "--print-architecture"], capture_output=True,
                          text=True).stdout.strip()
    if arch != host and not qemu_ready():
        pytest.skip(f"{arch} needs qemu-user-static and binfmt_misc")
    r = Root(base_root(arch), tmp_path_factory.mktemp(f"root-{arch}"), emulated=arch != host)
    yield r
    r.close()


def test_install_twice_run_uninstall(root, astronaut_clip):
    first = root.install("--no-start")
    assert first.returncode == 0, first.stderr[-4000:]
    log = first.stderr
    p = root.path
    # The unprivileged user, in the camera group, with no login.
    user = root.run("getent", "passwd", "facelens").stdout
    assert user and user.strip().endswith(":/usr/sbin/nologin")
    assert "video" in root.run("id", "-nG", "facelens").stdout.split()
    # The venv sees the system's packages (picamera2 from apt on a Pi).
    cfg = (p / "opt/facelens/venv/pyvenv.cfg").read_text()
    assert "include-system-site-packages = true" in cfg
    assert os.access(p / "opt/facelens/venv/bin/facelens", os.X_OK)
    # Verified models, owned by the service user.
    from facelens.edge.contract import ModelManifest

    models = p / "var/lib/facelens/models"
    for name in ("blazeface_full_range", "emotion_mini_xception"):
        m = ModelManifest.load(models / f"{name}.json")
        m.verify_file(models / m.file)
    assert (models / "emotion_model_quantized.tflite").stat().st_uid != 0
    # A default config, readable by the service, not by everyone.
    conf = p / "etc/facelens/config.toml"
    assert conf.is_file() and oct(conf.stat().st_mode)[-3:] == "640"
    # The unit, enabled.
    unit = p / "etc/systemd/system/facelens.service"
    assert unit.read_text() == (ROOT / "systemd/facelens.service").read_text()
    link = p / "etc/systemd/system/multi-user.target.wants/facelens.service"
    assert link.is_symlink() and os.readlink(link) == "/etc/systemd/system/facelens.service"
    assert "not starting the service" in log

    # Twice: nothing changes.
    before = root.snapshot()
    second = root.install("--no-start")
    assert second.returncode == 0, second.stderr[-4000:]
    assert root.snapshot() == before
    assert "already installed" in second.stderr and "keeping the existing" in second.stderr

    # The daemon, as the service user, on a real-face video, with the installed config.
    shutil.copy(astronaut_clip.path, p / "tmp/clip.avi")
    env = {"FACELENS_OUTPUT_STDOUT": "true", "FACELENS_RUNTIME_EDGETPU": "off",
           "FACELENS_MQTT_HOST": ""}
    if root.emulated:  # the clip's face is large; spare qemu seven model runs a frame
        env["FACELENS_DETECTOR_TILES"] = "1x1"
    run = root.run("/opt/facelens/venv/bin/facelens", "run", "--config",
                   "/etc/facelens/config.toml", "--source", "/tmp/clip.avi", user="facelens",
                   env=env)
    assert run.returncode == 0, run.stderr[-4000:]
    events = [json.loads(line) for line in run.stdout.splitlines()]
    assert events[0]["type"] == "new" and events[0]["emotion"]["label"] == "happy"
    assert events[-1]["type"] == "end"

    # Upgrade: the code is installed again, the owner's config is kept.
    conf.write_text(conf.read_text() + "# the owner's edit\n")
    up = root.install("--upgrade", "--no-start")
    assert up.returncode == 0, up.stderr[-4000:]
    assert "installing FaceLens" in up.stderr and "the owner's edit" in conf.read_text()
    assert root.run("/opt/facelens/venv/bin/facelens", "--version").stdout.startswith(
        "facelens ")

    # Uninstall keeps config and data; purge removes them and the user.
    gone = root.install("--uninstall")
    assert gone.returncode == 0, gone.stderr
    assert not unit.exists() and not link.is_symlink() and not (p / "opt/facelens").exists()
    assert conf.is_file() and models.is_dir()
    purged = root.install("--uninstall", "--purge")
    assert purged.returncode == 0, purged.stderr
    assert not conf.exists() and not (p / "var/lib/facelens").exists()
    assert root.run("getent", "passwd", "facelens").returncode != 0
