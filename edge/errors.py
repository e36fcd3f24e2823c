"""The one error base every command reports the same way: one line naming the key, file or
source at fault, an exit status per kind, and the whole cause chain on request.

Errors are raised `from exc`, so the cause is never lost; it is shown only with `--debug` or
`FACELENS_DEBUG=1`, because an owner reading the journal wants the one line, and a developer
chasing a bug wants the chain.
"""

from __future__ import annotations

import os
import sys
import traceback

DEBUG_ENV = "FACELENS_DEBUG"


class FaceLensError(Exception):
    """An expected failure with a message for the owner. `exit_code` and `kind` say how a
    command reports it: `<prog>: <kind>: <message>` and that exit status."""

    exit_code = 1
    kind = ""


def debug_requested(flag: bool = False) -> bool:
    return flag or os.environ.get(DEBUG_ENV, "").lower() in ("1", "true", "yes")


def show_cause(exc: BaseException, debug: bool = False) -> None:
    """The whole chain, with tracebacks, on stderr — when debugging."""
    if debug_requested(debug):
        traceback.print_exception(exc, file=sys.stderr)


def report(prog: str, exc: BaseException, *, debug: bool = False) -> int:
    """Print `exc` as one line (and its chain when debugging); return the exit status."""
    show_cause(exc, debug)
    kind = getattr(exc, "kind", "")
    print(f"{prog}: {kind + ': ' if kind else ''}{exc}", file=sys.stderr)
    return int(getattr(exc, "exit_code", 1))
