"""How much memory this process may still allocate, and the guard that checks a large request.

Free RAM is not enough: a process may be held by its address-space limit (``ulimit -v``,
RLIMIT_AS) or by its cgroup (a container's ``memory.max`` in cgroup v2,
``memory.limit_in_bytes`` in v1). :func:`available_memory` is the smallest of what each of
them leaves. Imports nothing heavy: the text readers use it too.
"""

from __future__ import annotations

import os

# Refuse to allocate more than this share of the memory available.
MEMORY_SHARE = 0.8
# Anything at or above this is "no limit" (cgroup v1 writes 2**63 rounded down to a page).
_UNLIMITED = 1 << 60


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
    except (OSError, ValueError):
        return None
    if not text or text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _proc_status_bytes(key: str) -> int | None:
    """A ``kB`` value of /proc/self/status (e.g. ``VmSize``), in bytes."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _free_ram() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _rlimit_left() -> int | None:
    """What RLIMIT_AS leaves beyond the address space already mapped."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return None
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (OSError, ValueError):
        return None
    if soft == resource.RLIM_INFINITY or soft < 0 or soft >= _UNLIMITED:
        return None
    used = _proc_status_bytes("VmSize") or 0
    return max(soft - used, 0)


def _cgroup_dirs(controller: str | None) -> list[str]:
    """Candidate folders of this process's cgroup (v2: controller None)."""
    root = "/sys/fs/cgroup" if controller is None else f"/sys/fs/cgroup/{controller}"
    dirs = []
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, names, path = line.rstrip("\n").split(":", 2)
                if (controller is None and names == "") or controller in names.split(","):
                    dirs.append(os.path.join(root, path.lstrip("/")))
    except (OSError, ValueError):
        pass
    dirs.append(root)  # in a container the cgroup's own folder is usually mounted at the root
    return dirs


def _cgroup_left() -> int | None:
    """What the memory cgroup (v2, else v1) leaves: its limit minus its current usage."""
    for limit_name, usage_name, controller in (
        ("memory.max", "memory.current", None),
        ("memory.limit_in_bytes", "memory.usage_in_bytes", "memory"),
    ):
        for d in _cgroup_dirs(controller):
            limit = _read_int(os.path.join(d, limit_name))
            if limit is None:
                continue
            if limit >= _UNLIMITED:
                break
            usage = _read_int(os.path.join(d, usage_name)) or 0
            return max(limit - usage, 0)
    return None


def available_memory() -> int | None:
    """Bytes this process may still allocate: the least of free RAM, what RLIMIT_AS leaves
    and what the memory cgroup leaves; None when none of them can be read."""
    known = [v for v in (_free_ram(), _rlimit_left(), _cgroup_left()) if v is not None]
    return min(known) if known else None


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def fits_in_memory(nbytes: int, available: int | None = None) -> bool:
    """Whether allocating ``nbytes`` stays within :data:`MEMORY_SHARE` of the memory left."""
    available = available_memory() if available is None else available
    return available is None or nbytes <= MEMORY_SHARE * available


def check_allocation(nbytes: int, what: str, hint: str = "") -> None:
    """Raise :class:`MemoryError` with a clear message if ``nbytes`` does not fit.

    Parameters
    ----------
    nbytes : int
        The size of the planned allocation.
    what : str
        What needs it, e.g. ``"data.ffm: a field table for feature index 2147483646"``.
    hint : str, optional
        How to avoid it.
    """
    available = available_memory()
    if not fits_in_memory(nbytes, available):
        raise MemoryError(
            f"{what} would need {fmt_bytes(nbytes)}, more than the {fmt_bytes(available)} of "
            "memory available to this process" + (f"; {hint}" if hint else "")
        )
