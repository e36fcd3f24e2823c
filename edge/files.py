"""Writing a file that root writes into a directory another user owns, safely.

`facelens models install` and `facelens faces add` run as root (sudo) into the service's
state directory, which the service's user owns and could prepare: so nothing is ever opened by
a name that user could have planted. A fresh random name (mkstemp: O_EXCL, never a symlink),
owner and mode set on the open descriptor, the whole content written and synced, then renamed
over the destination (which replaces a symlink there instead of following it).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_new(data: bytes, dest: Path, *, owner: tuple[int, int] | None = None,
              mode: int = 0o640) -> None:
    """Write `dest` whole through a fresh file of a random name beside it, set its owner and
    mode on the descriptor, and rename it into place. Nothing is ever opened by a name an
    untrusted user could have prepared."""
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if owner is not None and os.geteuid() == 0:
                os.fchown(f.fileno(), *owner)
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def owner_of(path: Path) -> tuple[int, int]:
    """(uid, gid) of `path`: what a file written into it as root should belong to."""
    st = path.stat()
    return st.st_uid, st.st_gid
