"""Reading the process table (Linux ``/proc``) to prove that no process outlived a test."""

from __future__ import annotations

from pathlib import Path

PROC = Path("/proc")


def stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name, or None if there is no such pid."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text[text.rindex(")") + 2 :].split()


def alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (dead, waiting to be reaped) does not count."""
    fields = stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def children(pid: int) -> list[int]:
    """The live child processes of ``pid``."""
    found = []
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            fields = stat_fields(int(entry.name))
            if fields is not None and int(fields[1]) == pid and fields[0] not in ("Z", "X"):
                found.append(int(entry.name))
    return found


def group_members(group: int) -> list[int]:
    """The live processes of process group ``group``."""
    found = []
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            fields = stat_fields(int(entry.name))
            if fields is not None and int(fields[2]) == group and fields[0] not in ("Z", "X"):
                found.append(int(entry.name))
    return found


def thread_count(pid: int) -> int:
    """How many threads ``pid`` runs; 0 if it has gone."""
    try:
        return len(list((PROC / str(pid) / "task").iterdir()))
    except FileNotFoundError:
        return 0
