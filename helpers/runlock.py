"""One lock per run folder: which process trains the run. `fcntl.flock`, waited for up to a timeout."""
from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path


class RunLockedError(RuntimeError):
    """Another live process is training this run."""


LOCK_WAIT_ENV = "RUN_LOCK_WAIT"  # seconds train_run waits for a run another process holds (default 0: it fails)


def lock_wait_s() -> float:
    """Return $RUN_LOCK_WAIT as seconds (0 when unset): how long train_run waits for another process's run."""
    text = os.environ.get(LOCK_WAIT_ENV, "").strip()
    try:
        value = float(text or 0)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise ValueError(f"parameter '{LOCK_WAIT_ENV}' (environment) = {text!r} is invalid; valid: seconds, >= 0")
    return value


class RunLock:
    """Exclusive lock on a run folder: fcntl.flock on `<run>/lock`, waited for up to `timeout` seconds.

    The kernel holds the lock for the process and drops it when the process ends, however it ends: there is no
    stale lock to detect and no process id to check. The file itself stays (deleting it would let two processes
    lock two different files); it names the holder's process id, for a person to read.
    """

    def __init__(self, path: Path, timeout: float = 0.0, poll_s: float = 0.1):
        self.file = Path(path) / "lock"
        self.timeout, self.poll_s = timeout, poll_s
        self._fd: int | None = None

    def __enter__(self):
        self.file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.file, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    waited = f" after waiting {self.timeout:g} s" if self.timeout else ""
                    raise RunLockedError(f"{self.file.parent} is being trained by another process{waited}; "
                                         f"wait for it, or stop it (set {LOCK_WAIT_ENV}=seconds to wait)") from None
                time.sleep(min(self.poll_s, max(deadline - time.monotonic(), 0.0)))
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc):
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the only descriptor releases the flock


def wait_unlocked(path: Path, timeout: float):
    """Return once no process holds run folder `path`'s lock; raise RunLockedError after `timeout` seconds."""
    with RunLock(path, timeout=timeout, poll_s=1.0):
        pass
