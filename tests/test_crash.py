"""Fault injection: a training process is killed with SIGKILL at many instants spread over one run, some of them
inside a checkpoint write, and resumed each time; the final history equals an uninterrupted run's, and no kill
loses more than one epoch.

Every attempt is a fork of one process that imported the project once (importing it takes seconds; a fork takes
milliseconds), so the test kills a real process at many instants and stays short. RUNS_TEST_WRITE_PAUSE makes every
checkpoint write pause half-way through its temporary file and leave a marker meanwhile, so that some kills land
inside a write, and the test can tell which did.
"""
import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd

from helpers.core import runs as store

COMPARE = ["epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc"]
EPOCHS = 4
CONFIG = dict(profile="smoke", train_size=32, test_size=16, batch_size=16, recipe="crop_flip", epochs=EPOCHS,
              snapshot_epochs=(2, EPOCHS))
KILLS = 22
WRITE_PAUSE_S = 0.1

ZYGOTE = textwrap.dedent("""
    import json, os, sys, traceback
    import torch
    import helpers.core.train as train  # imported once; each attempt below is a fork of this process
    torch.set_num_threads(1)  # the uninterrupted run and every attempt alike
    config = json.loads(sys.argv[1])
    for line in sys.stdin:
        root, progress = json.loads(line)
        pid = os.fork()
        if pid == 0:
            def note(row):
                fd = os.open(progress, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
                os.write(fd, f"{int(row['epoch'])}\\n".encode())
                os.close(fd)
            code = 0
            try:
                train.train_run(**config, runs_dir=root, progress=False, on_epoch=note)
            except BaseException:
                traceback.print_exc()
                code = 1
            os._exit(code)
        print(pid, flush=True)
        print(os.waitpid(pid, 0)[1], flush=True)
""")


class Zygote:
    """The process that forks one training attempt per request; its lines are read with a timeout."""

    def __init__(self, tmp_path: Path, marker: Path):
        env = {**os.environ, "PYTHONPATH": str(Path(store.__file__).parents[2]),
               store.WRITE_PAUSE_ENV: f"{marker}:{WRITE_PAUSE_S}"}
        self.proc = subprocess.Popen([sys.executable, "-c", ZYGOTE, json.dumps(CONFIG)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env, cwd=tmp_path)
        self.buf = b""

    def start(self, root: Path, progress: Path) -> int:
        """Fork one attempt training the run in `root`; return its pid."""
        self.proc.stdin.write((json.dumps([str(root), str(progress)]) + "\n").encode())
        self.proc.stdin.flush()
        return int(self.line(timeout=60))

    def line(self, timeout: float) -> str | None:
        """Return the zygote's next line, or None when none came within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                return None
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            assert chunk, "the zygote process ended"
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def _run_dir(root: Path) -> Path | None:
    """Return the one run folder under `root`, or None before the first attempt made it."""
    return next(root.iterdir(), None) if root.exists() else None


def _on_disk(run_dir: Path | None) -> int:
    """Return the epoch the run would resume from (all of them once finished); the checkpoint must load."""
    if run_dir is None:
        return 0
    if (run_dir / "record.json").exists():
        return EPOCHS
    last = run_dir / "last.pt"
    return int(store.load_checkpoint(last)["epoch"]) if last.exists() else 0


def _completed(progress: Path, before: int) -> int:
    """Return the last epoch the attempt finished (its on_epoch calls), or `before` when it finished none."""
    epochs = [int(t) for t in progress.read_text().split()] if progress.exists() else []
    return max(epochs + [before])


def _kill_when(i: int, epoch_s: float):
    """Return kill i's plan: (finished epochs to wait for, wait for a write too, then a delay in seconds)."""
    target = i * EPOCHS // KILLS if i < KILLS - 1 else EPOCHS  # the last one: after every epoch, in the final writes
    in_write = i % 3 == 1 or i == KILLS - 1
    frac = (i * 0.618) % 1.0  # spread over the epoch (or the write pause), never twice the same instant
    return target, in_write, frac * (WRITE_PAUSE_S * 0.8 if in_write else epoch_s * 1.5)


def test_sigkill_at_many_instants_resumes_to_the_uninterrupted_history(tmp_path):
    marker = tmp_path / "in-write"
    zygote = Zygote(tmp_path, marker)
    try:
        pid = zygote.start(tmp_path / "whole", tmp_path / "whole.progress")
        assert zygote.line(timeout=300) == "0", "the uninterrupted run failed"
        whole = store.load_run(next((tmp_path / "whole").iterdir()))
        epoch_s = float(whole.history["seconds"].mean())
        print(f"epoch {epoch_s:.2f}s", flush=True)
        root = tmp_path / "cut"
        kills, inside, lost, leftovers = 0, 0, [], 0
        for i in range(KILLS):
            target, in_write, delay = _kill_when(i, epoch_s)
            before = _on_disk(_run_dir(root))
            progress = tmp_path / f"progress{i}"
            marker.unlink(missing_ok=True)
            t0 = time.monotonic()
            pid = zygote.start(root, progress)
            deadline, ended = time.monotonic() + 120, None
            while ended is None:
                ready = _completed(progress, before) >= max(target, before + in_write) and (
                    not in_write or marker.exists())
                if ready:
                    break
                assert time.monotonic() < deadline, f"kill {i}: the attempt never reached epoch {target}"
                ended = zygote.line(timeout=0.005)  # the attempt ended on its own (finished the run)
            assert ended is None, f"kill {i}: the run finished before it could be killed ({target=})"
            time.sleep(delay)
            print(f"kill {i}: {time.monotonic() - t0:.2f}s into the attempt, epoch {_completed(progress, before)}, "
                  f"{'inside a write' if in_write else ''}", flush=True)
            os.kill(pid, signal.SIGKILL)
            status = int(zygote.line(timeout=60))
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"kill {i}: ended with {status}"
            kills += 1
            run_dir = _run_dir(root)
            left = list(run_dir.glob(".*.tmp")) if run_dir else []
            leftovers += bool(left)
            inside += marker.exists() and bool(left)
            lost.append(_completed(progress, before) - _on_disk(run_dir))  # the checkpoint always loads
        marker.unlink(missing_ok=True)
        zygote.start(root, tmp_path / "final.progress")
        assert zygote.line(timeout=300) == "0", "the resumed run failed"
    finally:
        zygote.close()
    resumed = store.load_run(next(root.iterdir()))
    print(f"\n{kills} SIGKILLs, {inside} inside a checkpoint write, {leftovers} left a temporary file; "
          f"epochs lost per kill: {lost} (largest {max(lost)})")
    assert kills >= 20 and inside >= 5, (kills, inside)
    assert max(lost) <= 1, lost
    assert not list(resumed.path.glob(".*.tmp")), "a killed write's temporary file was never removed"
    pd.testing.assert_frame_equal(resumed.history[COMPARE], whole.history[COMPARE])
    for epoch in (2, EPOCHS):
        a, b = (store.load_checkpoint(r.checkpoint_path(epoch))["model"] for r in (whole, resumed))
        assert all((a[k] == b[k]).all() for k in a), f"epoch {epoch}'s weights differ"
