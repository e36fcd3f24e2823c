"""Write the demo video: an empty room, the smiling astronaut for four seconds, empty again.

    python -m demo.make_video out/astronaut.avi
"""

from __future__ import annotations

import sys

from demo.scenes import astronaut_video

if __name__ == "__main__":
    path = sys.argv[1] if len(sys.argv) > 1 else "out/astronaut.avi"
    from pathlib import Path

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    video = astronaut_video(path)
    print(f"{video.path}: {video.total_frames} frames at {video.fps:g} fps, face in frames "
          f"{video.face_frames.start}-{video.face_frames.stop - 1}", file=sys.stderr)
