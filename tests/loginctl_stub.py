"""A stand-in for systemd's ``loginctl``, for machines without logind (such as CI containers).

It answers ``loginctl show-session SESSION -p LockedHint --value`` with the content of a
file -- ``yes`` or ``no``, as the real one prints -- and fails, as the real one does for
a session it does not know, for anything else.
"""

from __future__ import annotations

import stat
from pathlib import Path


def install_loginctl_stub(directory: Path, state: Path, session: str) -> Path:
    """Write ``directory/loginctl`` reporting ``state``'s content as ``session``'s LockedHint."""
    script = directory / "loginctl"
    script.write_text(
        "#!/bin/sh\n"
        f'if [ "$*" = "show-session {session} -p LockedHint --value" ]; then\n'
        f'  cat "{state}"; exit 0\n'
        "fi\n"
        "echo \"Failed to get session: No session '$2' known\" >&2; exit 1\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script
