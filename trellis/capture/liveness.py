"""Whether the process that recorded a run is still running it.

A run left ``running`` by a process that is gone was killed (SIGKILL, the out-of-memory killer,
a kernel stopped by its frontend, the machine turned off). Its pid alone does not say so: a
killed process stays in the process table as a zombie until its parent collects it, and the
system gives a freed pid to a later process. On Linux the process table says both, so a pid is
taken for the run's own process only if that process is not a zombie and began before the run.
"""

from __future__ import annotations

import os
import time

# /proc/<pid>/stat gives the start in clock ticks since boot (10 ms); a process that began this
# much after the run did is certainly another process, whatever the clock did meanwhile.
_SLACK_SECONDS = 0.5


def process_gone(pid: int | None, started: float | None) -> bool:
    """Whether the process ``pid`` of this machine, which began a run at ``started`` (seconds
    since the epoch), has ended. False when it cannot be told."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OSError):
        pass  # another user's process: it exists
    state, began = _process_state(pid)
    if state in ("Z", "X"):  # killed, not yet collected by its parent
        return True
    return began is not None and started is not None and began > started + _SLACK_SECONDS


def _process_state(pid: int) -> tuple[str | None, float | None]:
    """The state letter and the start time (seconds since the epoch) of ``pid``, from /proc."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read().decode("ascii", "replace")
    except OSError:
        return None, None
    # the command name is in parentheses and may hold any character, ")" included
    fields = stat[stat.rfind(")") + 2:].split()
    if len(fields) < 20:
        return None, None
    boot = _boot_time()
    if boot is None:
        return fields[0], None
    return fields[0], boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def _boot_time() -> float | None:
    """When the machine booted, in seconds since the epoch, to the microsecond (/proc/stat has
    whole seconds, which may differ by one between reads)."""
    try:
        return time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
    except (AttributeError, OSError):
        return None
