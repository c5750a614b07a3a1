"""One runner per session: an exclusive flock on the session's lock file.

The kernel drops a flock when its holder's process dies, kill -9 included, so
a lock left by a dead runner is simply taken by the next one. The file also
holds the holder's pid and start time, for messages; the flock, not the file,
says whether the session is held.

The lock belongs to the open file: a child made by a plain fork() (not
exec'd) would hold it too. The workers do not: they are forked from
multiprocessing's fork server, never from the runner, and that server holds only
the descriptors it needs (an exec'd process given them, or, for a CPU session, a
fork of the runner that closes every other descriptor before it serves).

Others may write the folders these files live in (a shared minima folder, say),
so they are opened with ``open_unfollowed``: a symbolic link planted there,
pointing at a file of the user's, is refused rather than followed and emptied.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from sessions.errors import SessionError

# A reader's probe (holder()) holds a shared flock for microseconds; acquire() retries
# for this long before it calls the session taken, so a probe never looks like a runner.
_ACQUIRE_PATIENCE_S = 0.25
_RETRY_S = 0.01


class LockedError(SessionError):
    """The session is being run by another live process."""


class UnsafeFileError(SessionError):
    """A file nebtui writes is a symbolic link, or not a plain file with one name: refused, never followed."""


def open_unfollowed(path: Path, flags: int, what: str) -> int:
    """A descriptor of the plain file at ``path``, opened without following a symbolic link
    (O_NOFOLLOW) and closed on exec (O_CLOEXEC). Whoever can write the folder could plant a
    link there to a file of the user's, which O_CREAT and a truncate would then empty; a
    FIFO (which would block) or a hard link is refused the same way. ``what`` names the
    file in the message, e.g. "the lock"; other OSErrors pass through."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeFileError(f"{what} {path} is a symbolic link, which nebtui never follows: remove it "
                                  "(someone who can write the folder may have planted it) and try again") from None
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        kind = "a hard link to another file" if stat.S_ISREG(info.st_mode) else "not a plain file"
        raise UnsafeFileError(f"{what} {path} is {kind}, which nebtui never writes through: remove it "
                              "(someone who can write the folder may have planted it) and try again")
    return fd


@dataclass(frozen=True)
class LockHolder:
    """Who holds a lock: pid and start time as written by the holder (None until it has written them)."""

    pid: int | None
    started: float | None


def _read_holder(fd: int) -> LockHolder:
    try:
        raw = json.loads(os.pread(fd, 4096, 0))
        pid, started = raw["pid"], raw["started"]
        if type(pid) is int and pid > 0 and isinstance(started, (int, float)):
            return LockHolder(pid, float(started))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return LockHolder(None, None)


def holder_info(path: Path) -> LockHolder | None:
    """Who holds the lock at ``path`` now, or None if no live process does. Takes nothing."""
    try:
        fd = open_unfollowed(path, os.O_RDONLY, "the lock")
    except (FileNotFoundError, UnsafeFileError):
        return None  # no lock, or a planted one no runner can hold
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            # Held. The holder writes its pid right after locking; give it a moment.
            deadline = time.monotonic() + 1.0
            info = _read_holder(fd)
            while info.pid is None and time.monotonic() < deadline:
                time.sleep(_RETRY_S)
                info = _read_holder(fd)
            return info
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def holder(path: Path) -> int | None:
    """The pid of the live process holding the lock at ``path``, or None if it is free.

    Also None in the (practically unseen) case of a holder that locked but
    wrote no pid within a second; use holder_info to tell that case apart.
    """
    info = holder_info(path)
    return None if info is None else info.pid


def _describe(session: str, info: LockHolder) -> str:
    if info.pid is None:
        who = "another process"
    else:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.started)) if info.started else "?"
        who = f"pid {info.pid} (started {started})"
    return f"session {session} is being run by {who}: stop it with nebtui sessions stop {session}, or wait"


class RunnerLock:
    """The session's runner lock at ``path`` (the session is named after the lock's folder)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.session = self.path.parent.name
        self._fd = -1

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def acquire(self) -> None:
        """Take the lock without blocking and record this pid; LockedError if a live process holds it."""
        if self.held:
            return
        try:
            fd = open_unfollowed(self.path, os.O_RDWR | os.O_CREAT, "the lock")
        except OSError as exc:
            raise SessionError(f"cannot open the lock {self.path} ({exc.strerror}): check the session folder") from None
        deadline = time.monotonic() + _ACQUIRE_PATIENCE_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                info = _read_holder(fd)
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise LockedError(_describe(self.session, info)) from None
                time.sleep(_RETRY_S)
        try:
            record = json.dumps({"pid": os.getpid(), "started": time.time()}).encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, record, 0)
        except OSError as exc:
            os.close(fd)
            raise SessionError(f"cannot write the lock {self.path} ({exc.strerror}): check the session folder") from None
        self._fd = fd

    def release(self) -> None:
        """Give the lock up (also happens when the process dies)."""
        if not self.held:
            return
        try:
            os.ftruncate(self._fd, 0)
        except OSError:
            pass
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = -1

    def __enter__(self) -> "RunnerLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
