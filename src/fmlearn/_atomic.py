"""Atomic file writes: a crash or an error never leaves a half-written file behind.

One home for every file fmlearn writes (model files, libFM/FFM text, predictions, plots):

- The target must be a regular file or a new name in an existing folder. A character device
  (``/dev/null``), a FIFO, a socket or a directory is refused with :class:`UnsafeTargetError`
  before anything is written, so that a rename can never replace it.
- A symlink is followed: the file it points to (which must itself be regular or new) is
  replaced, and the link stays a link.
- The data goes to a temporary file ``.<name>.fmlearn-tmp-<pid>-<random>`` beside the target,
  flushed and ``fsync``-ed, then renamed over the target. On any failure (an exception, a full
  disk, Ctrl-C) the temporary file is removed. Temporary files left by earlier saves that were
  killed (their process is gone) are removed by the next save to the same path.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
import time
from pathlib import Path

TMP_MARK = ".fmlearn-tmp-"


class UnsafeTargetError(ValueError):
    """The path to write is not a regular file (or a new name in an existing folder)."""


def _umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)  # elsewhere: the classic set-and-restore
    os.umask(umask)
    return umask


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
)


def file_kind(mode: int) -> str:
    """``"a directory"``, ``"a FIFO (named pipe)"``, ... for a non-regular ``st_mode``."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def open_regular(path, refuse):
    """Open ``path`` for reading only if it is a regular file: (binary file, size in bytes).

    Anything else raises ``refuse(kind)`` (``kind`` from :func:`file_kind`): readers need the
    file's size, ``/dev/zero`` never ends and a FIFO can block forever. The open does not
    block on a FIFO without a writer (``O_NONBLOCK``); a regular file is then read blocking.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise refuse(file_kind(st.st_mode))
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb"), st.st_size
    except BaseException:
        os.close(fd)
        raise


def resolve_target(path) -> Path:
    """The file a write to ``path`` replaces, checked; raise if writing there is unsafe.

    Symlinks are followed (the link's target is replaced). The result is a regular file or
    a name that does not exist yet, in an existing directory.

    Raises
    ------
    UnsafeTargetError
        ``path`` is (or links to) a directory, device, FIFO or socket, or ends in ``/``.
    FileNotFoundError
        The folder that would hold the file does not exist.
    """
    text = os.fspath(path)
    if not text or text.endswith(os.sep):
        raise UnsafeTargetError(f"{text or repr(text)}: not a file name")
    target = Path(os.path.realpath(text))
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise UnsafeTargetError(f"{text}: cannot write there ({e.strerror})") from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise UnsafeTargetError(
            f"{text}: is {file_kind(st.st_mode)}; fmlearn writes only regular files "
            "(give a new file name or an existing regular file)"
        )
    parent = target.parent
    if not parent.is_dir():
        raise FileNotFoundError(
            errno.ENOENT, f"{text}: the folder {os.fspath(parent)!r} does not exist", text
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, f"{text}: the folder is not writable", text)
    return target


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's process: leave its file alone
    return True


# fmlearn <= 0.2 named its temporary files ``.<name>.<8 random characters>.tmp`` (no pid):
# those are removed once older than this.
_LEGACY_TMP_AGE_S = 3600


def clean_stale_temporaries(target: Path) -> list[str]:
    """Remove temporary files of earlier saves to ``target`` whose process is gone.

    Only names this module gives (``.<name>.fmlearn-tmp-<pid>-<hex>``) whose pid no longer
    runs, and the older ``.<name>.XXXXXXXX.tmp`` ones once an hour old, are touched.
    """
    prefix = re.escape(f".{target.name}")
    ours = re.compile(prefix + re.escape(TMP_MARK) + r"(\d+)-[0-9a-f]+\Z")
    legacy = re.compile(prefix + r"\.[A-Za-z0-9_]{8}\.tmp\Z")
    removed = []
    try:
        names = os.listdir(target.parent)
    except OSError:
        return removed
    now = time.time()
    for name in names:
        m = ours.match(name)
        if m is None and legacy.match(name) is None:
            continue
        if m is not None and _pid_alive(int(m.group(1))):
            continue
        p = target.parent / name
        with contextlib.suppress(OSError):
            st = os.lstat(p)
            if not stat.S_ISREG(st.st_mode):
                continue
            if m is None and now - st.st_mtime < _LEGACY_TMP_AGE_S:
                continue
            os.unlink(p)
            removed.append(name)
    return removed


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb"):
    """Open a temporary file beside ``path``; on success flush, fsync and rename it over ``path``.

    On any exception the temporary file is removed and ``path`` is left as it was. ``path``
    must be a regular file, or a new name in an existing folder (see :func:`resolve_target`);
    a symlink is followed.

    Parameters
    ----------
    path : str or os.PathLike
    mode : {"wb", "w"}

    Yields
    ------
    file object

    Raises
    ------
    UnsafeTargetError
        ``path`` is a directory, device, FIFO or socket.
    FileNotFoundError
        Its folder does not exist.
    """
    target = resolve_target(path)
    clean_stale_temporaries(target)
    tmp = target.parent / f".{target.name}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        # Created 0600; give the new file the usual umask-based permissions.
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, mode) as f:
            fd = -1
            yield f
            f.flush()
            os.fsync(f.fileno())
        # Checked again just before the rename: the target may have changed meanwhile.
        with contextlib.suppress(FileNotFoundError):
            st = os.stat(target)
            if not stat.S_ISREG(st.st_mode):
                raise UnsafeTargetError(
                    f"{os.fspath(path)}: became {file_kind(st.st_mode)} while writing; "
                    "not replaced"
                )
        os.replace(tmp, target)
    except BaseException:
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
