"""``python -m zoo.deathsig PARENT_PID CMD...``: run CMD, killed if PARENT_PID dies (Linux).

The zoo starts the trainer through this shim instead of a ``preexec_fn`` (which would fork a
process that has JAX's threads running). It asks the kernel for SIGKILL on its parent's death,
checks the parent is still the one it expects (no race), then execs the command in place.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> None:
    parent, command = int(argv[0]), argv[1:]
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:  # not Linux: the zoo's hard deadline still applies
        pass
    if os.getppid() != parent:  # the zoo died before the guard was in place
        sys.exit(1)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
