"""Deployment files: shell scripts pass shellcheck, the unit passes `systemd-analyze verify`
with no output at all (it warns on misspelt keys yet exits 0) and rates OK on security."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "facelens.service"
SCRIPTS = sorted([*ROOT.glob("scripts/*.sh"), *ROOT.glob("*.sh"), ROOT / ".ci" / "run"])


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shellcheck(script):
    out = subprocess.run(["shellcheck", "-s", "bash", str(script)], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stdout


def verify(unit_text: str, tmp_path: Path) -> str:
    """`systemd-analyze verify` on the unit with ExecStart pointed at a real executable
    (the venv does not exist here); returns everything it printed."""
    unit = tmp_path / "facelens.service"
    unit.write_text(unit_text.replace("/opt/facelens/venv/bin/facelens", sys.executable))
    out = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                         text=True)
    return (out.stdout + out.stderr).strip()


needs_systemd = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze not installed")


@needs_systemd
def test_unit_verifies_without_a_word(tmp_path):
    assert verify(UNIT.read_text(), tmp_path) == ""


@needs_systemd
def test_verify_would_catch_a_misspelt_key(tmp_path):
    """The check above can fail: a misspelt key makes verify talk (while exiting 0)."""
    text = UNIT.read_text().replace("ProtectHome=yes", "ProtectHomes=yes")
    assert "ProtectHomes" in verify(text, tmp_path)


@needs_systemd
def test_unit_security_rating_is_ok():
    out = subprocess.run(["systemd-analyze", "security", "--offline=true", str(UNIT)],
                         capture_output=True, text=True)
    score = float(re.search(r"Overall exposure level for \S+: ([\d.]+)", out.stdout).group(1))
    print(f"systemd-analyze security: {score}")
    assert score <= 2.0, out.stdout  # "OK" goes up to 3.9; we aim well inside it


def test_unit_is_notify_with_watchdog_and_unprivileged():
    text = UNIT.read_text()
    for line in ("Type=notify", "WatchdogSec=", "User=facelens", "NoNewPrivileges=yes",
                 "CapabilityBoundingSet=\n", "ProtectSystem=strict", "StateDirectory=facelens",
                 "Restart=on-failure", "StartLimitBurst="):
        assert line in text, line
