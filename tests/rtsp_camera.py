"""A real RTSP camera for the tests: GStreamer's RTSP server serving an H.264 file in a loop.

Run with Debian's python3 (it needs python3-gi and gir1.2-gst-rtsp-server-1.0, which a venv
cannot pip-install): `python3 tests/rtsp_camera.py CLIP.h264 PORT`. It prints "ready" once
listening. The test stops it (SIGKILL: the camera dies), freezes it (SIGSTOP: connections stay
open, no data flows) and starts it again on the same port.
"""

from __future__ import annotations

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main(clip: str, port: int, fps: int = 10) -> None:
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    factory = GstRtspServer.RTSPMediaFactory()
    # A raw Annex-B file, re-timed to the camera's rate, looped forever.
    factory.set_launch(
        f"( multifilesrc location={clip} loop=true caps=video/x-h264,stream-format=byte-stream"
        f",framerate={fps}/1 ! h264parse config-interval=1 ! rtph264pay name=pay0 pt=96 )")
    # One pipeline per client: a client that drops mid-stream (FaceLens reopening) leaves
    # nothing half-torn-down for the next one, as a real camera's encoder would not.
    factory.set_shared(False)
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        raise SystemExit(f"cannot listen on 127.0.0.1:{port}")
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
