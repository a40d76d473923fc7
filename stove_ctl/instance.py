"""One daemon per state_dir and per control socket (DESIGN invariant 9).

Both locks are taken before the daemon touches anything: a second daemon refuses to
start, names the one that runs, and leaves its socket, state and relays alone.

- The state_dir lock is a ``flock`` on the directory itself, so it works when the
  directory is read-only (nothing has to be created in it).
- The socket lock is a ``flock`` on ``<socket>.lock`` beside the socket: two configs
  that name the same socket (or both use the per-user default) exclude each other even
  with different state dirs.

The running daemon is named from the kernel's own record of who holds the lock
(``/proc/locks``), so no pid file has to be written, trusted or cleaned up.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from stove_ctl.config import default_socket_dir
from stove_ctl.errors import StoveCtlError


@contextlib.contextmanager
def single_instance(state_dir: Path, socket: Path) -> Iterator[None]:
    """Hold both locks for the life of the daemon. Raises StoveCtlError, naming the
    daemon that holds one, when another daemon runs on the same state_dir or socket."""
    with contextlib.ExitStack() as held:
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            directory = os.open(state_dir, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise StoveCtlError(f"cannot open state_dir {state_dir}: {_why(exc)}") from None
        held.callback(os.close, directory)
        _lock(directory, f"state_dir {state_dir}")
        sock_lock = socket.with_name(socket.name + ".lock")
        try:
            private_dir(socket.parent)
            lock_file = os.open(sock_lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise StoveCtlError(f"cannot lock the control socket {socket}: {_why(exc)}") from None
        held.callback(os.close, lock_file)
        _lock(lock_file, f"the control socket {socket}")
        yield


def private_dir(directory: Path) -> None:
    """Make sure the default socket's directory is one no other user can plant a file
    or a socket in: ours, a directory, mode 0700. Under /tmp it is created here. A
    directory the config names is the config's business."""
    if directory != default_socket_dir():
        directory.mkdir(parents=True, exist_ok=True)
        return
    if not os.environ.get("XDG_RUNTIME_DIR"):
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory, 0o700)
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode):
        problem = "is not a directory (someone else may have made it)"
    elif info.st_uid != os.getuid():
        problem = f"belongs to another user (uid {info.st_uid})"
    elif info.st_mode & 0o077:
        problem = f"is open to other users (mode {stat.S_IMODE(info.st_mode):04o})"
    else:
        return
    raise StoveCtlError(
        f"the control socket's directory {directory} {problem}; "
        "remove it, or set socket: in the config"
    )


def _lock(fd: int, what: str) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise StoveCtlError(
            f"another stove-ctl daemon ({holder(fd)}) is running with {what}; "
            "stop it first, or give this one its own"
        ) from None


def holder(fd: int) -> str:
    """Who holds the flock on ``fd``: "pid N, stove-ctl run -c FILE", as far as known."""
    info = os.fstat(fd)
    wanted = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    try:
        with open("/proc/locks", encoding="ascii") as locks:
            lines = locks.read().splitlines()
    except OSError:
        return "pid unknown"
    for line in lines:
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 fe:00:2148400 0 EOF"
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == wanted:
            pid = fields[4]
            return f"pid {pid}{_command(pid)}"
    return "pid unknown"


def _command(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            words = f.read().split(b"\0")
    except OSError:
        return ""
    text = " ".join(w.decode(errors="replace") for w in words if w)
    return f", {text}" if text else ""


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)
