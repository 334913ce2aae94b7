"""Child processes that do not outlive the command that started them.

A worker started by ``cadence demo`` or ``cadence bench pipeline`` runs in a session of its
own (no terminal signals reach it) and would keep consuming, and holding its web port, if
that command were killed outright.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def dies_with_this_thread() -> Callable[[], None] | None:
    """A ``preexec_fn`` after which Linux kills the child when the thread starting it ends.

    Whatever ends this process (SIGKILL included), its worker does not outlive it; the
    worker runs in a session of its own (no terminal signals) and would otherwise keep
    consuming. None elsewhere than Linux. prctl is looked up here, not in the child.
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def set_death_signal() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))
        if os.getppid() != parent:  # it died before prctl: the signal will never come
            os.kill(os.getpid(), signal.SIGKILL)

    return set_death_signal
