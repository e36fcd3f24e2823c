"""A real RTSP camera (GStreamer's RTSP server, H.264 from real photos) that dies, comes back
and freezes, against `facelens run`: frames and events resume within seconds of its return, a
frozen camera is reported as stalled and reopened, and SIGTERM ends the daemon in every state.

Every wait is on a condition (a log line, an event, the live page's stats) with a generous
limit; the seconds measured are printed, and asserted only against the documented targets
(back within 5 s of the camera, a stall noticed within stall_s + 1 s), which depend on the
retry schedule, not on the machine's speed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import FACELENS, ROOT
from tests.mqtt_helpers import free_port

SYSTEM_PYTHON = "/usr/bin/python3"
GST_LAUNCH = shutil.which("gst-launch-1.0")


def _rtsp_available() -> bool:
    if not GST_LAUNCH or not Path(SYSTEM_PYTHON).exists():
        return False
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0'); "
         "from gi.repository import GstRtspServer"], capture_output=True)
    return probe.returncode == 0


pytestmark = [
    # CI installs them (.ci/run): there a missing server is a failure, not a skip.
    pytest.mark.skipif(not _rtsp_available() and not os.environ.get("CI"),
                       reason="GStreamer's RTSP server (Debian gir1.2-gst-rtsp-server-1.0, "
                       "python3-gi) is not installed"),
    pytest.mark.timeout(600),
]
STALL_S = 2.0


@pytest.fixture(scope="module")
def h264_clip(tmp_path_factory) -> Path:
    """The astronaut clip (real photo) as a raw Annex-B H.264 file, a key frame every second."""
    from demo.scenes import astronaut_video

    folder = tmp_path_factory.mktemp("rtsp")
    avi = astronaut_video(folder / "astronaut.avi").path
    out = folder / "astronaut.h264"
    pipeline = (f"filesrc location={avi} ! decodebin ! videoconvert ! x264enc tune=zerolatency "
                "speed-preset=ultrafast key-int-max=10 ! "
                "video/x-h264,profile=baseline,stream-format=byte-stream ! "
                f"filesink location={out}")
    subprocess.run([GST_LAUNCH, "-q", *pipeline.split()], check=True, timeout=120)
    assert out.stat().st_size > 10_000
    return out


class Camera:
    """The RTSP server process; start/kill/freeze/thaw it on one port."""

    def __init__(self, clip: Path) -> None:
        self.clip, self.port = clip, free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/cam"

    def start(self) -> float:
        self.proc = subprocess.Popen([SYSTEM_PYTHON, str(ROOT / "tests" / "rtsp_camera.py"),
                                      str(self.clip), str(self.port)], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # blocks until listening (or the process died)
        assert line.strip() == "ready", "the RTSP server did not start"
        return time.monotonic()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)


class Daemon:
    """`facelens run` on the camera with the live page on, its stderr lines timestamped."""

    def __init__(self, env: dict, uri: str) -> None:
        self.web_port = free_port()
        env = {**env, "FACELENS_SOURCE_STALL_S": str(STALL_S),
               "FACELENS_SOURCE_OPEN_TIMEOUT_S": "3",
               "FACELENS_WEB_ENABLED": "true", "FACELENS_WEB_LISTEN": f"127.0.0.1:{self.web_port}"}
        self.proc = subprocess.Popen([*FACELENS, "run", "--source", uri],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=env)
        self.events: list[tuple[float, dict]] = []
        self.log: list[tuple[float, str]] = []
        threading.Thread(target=self._out, daemon=True).start()
        threading.Thread(target=self._err, daemon=True).start()

    def _out(self) -> None:
        for line in self.proc.stdout:
            self.events.append((time.monotonic(), json.loads(line)))

    def _err(self) -> None:
        for line in self.proc.stderr:
            self.log.append((time.monotonic(), line.rstrip()))

    def text(self) -> str:
        return "\n".join(line for _, line in self.log)

    def until(self, predicate, what: str, timeout: float = 60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = predicate()
            if got:
                return got
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{what}: not within {timeout:g} s\n{self.text()[-3000:]}")

    def logged(self, fragment: str, after: float) -> float | None:
        return next((t for t, line in self.log if t >= after and fragment in line), None)

    def new_event(self, after: float) -> float | None:
        return next((t for t, e in self.events if t >= after and e["type"] == "new"), None)

    def camera(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/api/stats",
                                    timeout=5) as r:
            return json.loads(r.read())["cameras"].get("camera", {})

    def status_is(self, status: str) -> bool:
        try:
            return self.camera().get("status") == status
        except OSError:
            return False

    def sigterm(self) -> float:
        asked = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        return time.monotonic() - asked


@pytest.fixture
def camera(h264_clip):
    cam = Camera(h264_clip)
    yield cam
    cam.kill()


def test_camera_killed_and_back_resumes_within_seconds(camera, cli_env):
    camera.start()
    daemon = Daemon(cli_env, camera.uri)
    try:
        daemon.until(lambda: daemon.new_event(0), "a first face from the camera")
        camera.kill()
        # The loss is logged once (the test camera has been seen to drop a client by itself
        # under load, a moment before the kill: then that was the loss).
        daemon.until(lambda: daemon.logged("stopped delivering frames", 0)
                     or daemon.logged("no frame for", 0), "the loss noticed")
        daemon.until(lambda: daemon.status_is("reconnecting"), "the page says reconnecting")
        back = camera.start()
        opened = daemon.until(lambda: daemon.logged("opened again", back), "reopened", 30)
        resumed = daemon.until(lambda: daemon.new_event(back), "events after the return", 60)
        daemon.until(lambda: daemon.status_is("streaming"), "the page says streaming")
        print(f"camera back -> source reopened {opened - back:.2f} s, first new event "
              f"{resumed - back:.2f} s later; reconnects {daemon.camera()['reconnects']}")
        assert opened - back < 5.0  # the target: reading again within 5 s of the return
        took = daemon.sigterm()
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
    assert daemon.proc.returncode == 0, daemon.text()
    assert took < 3.0, f"SIGTERM took {took:.2f} s"


def test_frozen_camera_is_a_stall_reopened_and_sigterm_still_quick(camera, cli_env):
    camera.start()
    daemon = Daemon(cli_env, camera.uri)
    try:
        daemon.until(lambda: daemon.new_event(0), "a first face from the camera")
        camera.signal(signal.SIGSTOP)  # the connection stays open; no data flows
        frozen = time.monotonic()
        stalled = daemon.until(lambda: daemon.logged("no frame for", frozen), "a stall", 30)
        daemon.until(lambda: daemon.camera().get("stalls", 0) >= 1, "stalls counted")
        print(f"frozen -> stall reported {stalled - frozen:.2f} s (stall_s {STALL_S:g})")
        assert stalled - frozen < STALL_S + 1.0  # the target
        camera.signal(signal.SIGCONT)
        thawed = time.monotonic()
        resumed = daemon.until(lambda: daemon.new_event(thawed), "events after the thaw", 60)
        print(f"thawed -> first new event {resumed - thawed:.2f} s")
        # Frozen again, and SIGTERM while the reader is stuck in the stalled read.
        camera.signal(signal.SIGSTOP)
        daemon.until(lambda: daemon.camera().get("seconds_since_frame", 0) > 0.5, "no frames")
        took = daemon.sigterm()
    finally:
        camera.signal(signal.SIGCONT)
        if daemon.proc.poll() is None:
            daemon.proc.kill()
    assert daemon.proc.returncode == 0, daemon.text()
    print(f"SIGTERM while stalled: {took:.2f} s")
    assert took < 3.0


def test_sigterm_while_the_camera_is_away(camera, cli_env):
    camera.start()
    daemon = Daemon(cli_env, camera.uri)
    try:
        daemon.until(lambda: daemon.status_is("streaming"), "streaming")
        camera.kill()
        daemon.until(lambda: daemon.status_is("reconnecting"), "reconnecting")
        took = daemon.sigterm()
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
    assert daemon.proc.returncode == 0, daemon.text()
    print(f"SIGTERM while reconnecting: {took:.2f} s")
    assert took < 3.0
