"""A real Home Assistant for the tests: installed once into a venv of its own (never a FaceLens
dependency), configured with no UI (an MQTT config entry written into `.storage`), started
against a test's mosquitto, read back from its own registries and log.

2024.1.6 is the newest Home Assistant that installs on Python 3.11 (CI's): its MQTT
integration needs paho-mqtt 1.6.1, file_upload needs janus, camera needs numpy.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HA_VERSION = "2024.1.6"
HA_REQUIREMENTS = [f"homeassistant=={HA_VERSION}", "paho-mqtt==1.6.1", "janus==1.0.0",
                   "numpy==1.26.4"]


#: A Debian 13 root with today's Home Assistant in /opt/ha (scripts/ha-current.sh makes it):
#: the tests then run that one, in a container sharing the host's network, instead.
ROOT_ENV = "FL_HA_ROOT"


@dataclass(frozen=True)
class Hass:
    """How to start one installed Home Assistant on a config folder."""

    version: str
    executable: Path
    #: A root file system it lives in (run with systemd-nspawn), or None: this machine.
    root: Path | None = None

    def command(self, folder: Path, *, pip: bool = False) -> list[str]:
        """`pip`: let Home Assistant install its integrations' requirements (a warm-up)."""
        run = [str(self.executable), "-c", str(folder), *([] if pip else ["--skip-pip"])]
        if self.root is None:
            return run
        # The host's network (no --private-network): the test's broker is on its loopback.
        # SIGTERM to nspawn goes on to Home Assistant, which saves its registries. Its
        # installer (uv) trusts the CA bundle the root was given.
        return ["systemd-nspawn", "--quiet", "--register=no", "--keep-unit",
                "--kill-signal=SIGTERM", "-D", str(self.root), f"--bind={folder}",
                "--setenv=SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt", *run]


def home_assistant(cache: Path) -> Hass:
    """Today's Home Assistant where FL_HA_ROOT names its root, else 2024.1.6 in a venv."""
    root = os.environ.get(ROOT_ENV)
    if root:
        version = (Path(root) / "opt" / "ha" / ".complete").read_text().strip()
        return in_root(Path(root), version)
    return Hass(HA_VERSION, ensure_venv(cache))


def in_root(root: Path, version: str) -> Hass:
    """The Home Assistant scripts/ha-current.sh installs in a root's /opt/ha."""
    return Hass(version, Path("/opt/ha/bin/hass"), root)


def ensure_venv(cache: Path) -> Path:
    """The `hass` executable of a cached venv with Home Assistant installed."""
    venv = cache / f"ha-{HA_VERSION}"
    hass = venv / "bin" / "hass"
    marker = venv / ".complete"
    if marker.is_file():
        return hass
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True,
                   timeout=300)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                    "--disable-pip-version-check", *HA_REQUIREMENTS], check=True, timeout=2400)
    marker.write_text(HA_VERSION + "\n")
    return hass


def write_config(folder: Path, broker_port: int, automations: list[dict] | None = None) -> None:
    (folder / ".storage").mkdir(parents=True, exist_ok=True)
    (folder / "configuration.yaml").write_text(
        "homeassistant:\n  name: FaceLens test\n  latitude: 0\n  longitude: 0\n"
        "  elevation: 0\n  unit_system: metric\n  time_zone: UTC\n"
        # Today's Home Assistant logs discovery and connections at debug level only.
        "logger:\n  default: info\n  logs:\n    homeassistant.components.mqtt: debug\n"
        "automation: !include automations.yaml\n")
    (folder / "automations.yaml").write_text(json.dumps(automations or []))  # JSON is YAML
    entries = folder / ".storage" / "core.config_entries"
    if not entries.exists():
        entries.write_text(json.dumps({
            "version": 1, "minor_version": 1, "key": "core.config_entries",
            "data": {"entries": [{
                "entry_id": "facelens0test0mqtt0entry00000000", "version": 1,
                "minor_version": 1, "domain": "mqtt", "title": "mosquitto",
                "data": {"broker": "127.0.0.1", "port": broker_port, "discovery": True},
                "options": {}, "pref_disable_new_entities": False,
                "pref_disable_polling": False, "source": "user", "unique_id": None,
                "disabled_by": None}]}}))


class HomeAssistant:
    def __init__(self, hass: Hass, folder: Path, *, pip: bool = False) -> None:
        self.folder = folder
        self.log = folder / "home-assistant.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FACELENS_", "PYTHON"))}
        self.proc = subprocess.Popen(hass.command(folder, pip=pip), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, env=env)

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def wait_log(self, fragment: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while fragment not in self.log_text():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"Home Assistant never logged {fragment!r}:\n"
                                     f"{self.log_text()[-4000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM: Home Assistant saves its registries on the way out."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def registry(self, name: str) -> dict:
        return json.loads((self.folder / ".storage" / name).read_text())["data"]

    def problems(self) -> list[str]:
        """WARNING and ERROR lines about MQTT or FaceLens (invalid, deprecated, failed)."""
        out = []
        for line in self.log_text().splitlines():
            if (" WARNING " in line or " ERROR " in line) and (
                    "mqtt" in line.lower() or "facelens" in line.lower()):
                out.append(line)
        return out


def warm_up(root: Path, version: str, folder: Path) -> None:
    """Start the root's Home Assistant once with its installer on, on the tests' config (MQTT,
    automations), so the tests' runs (--skip-pip) find every requirement in place."""
    write_config(folder, 1)  # no broker: the MQTT integration only has to be set up
    ha = HomeAssistant(in_root(root, version), folder, pip=True)
    try:
        ha.wait_log("Setup of domain automation", timeout=1200)
        ha.wait_log("Setup of domain mqtt", timeout=1200)
    finally:
        ha.stop()


if __name__ == "__main__":  # scripts/ha-current.sh: python -m tests.home_assistant ROOT VER DIR
    warm_up(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))
