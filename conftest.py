"""Test session set-up: the smoke profile and a private run store, for unit tests and nbval alike."""
import os
import shutil
import tempfile

# Notebooks executed by nbval read PROFILE through profile="auto"; tests never train on a profile
# bigger than smoke, and never touch the user's runs/.
if os.environ.get("PROFILE", "auto") in ("", "auto"):
    os.environ["PROFILE"] = "smoke"
# The private store holds every smoke run the notebooks train (about 4 GB of checkpoints by the end of a
# session), so it is deleted when the session ends; a RUNS_DIR given by the caller is left alone.
PRIVATE_RUNS_DIR = None if os.environ.get("RUNS_DIR") else tempfile.mkdtemp(prefix="runs-test-")
if PRIVATE_RUNS_DIR:
    os.environ["RUNS_DIR"] = PRIVATE_RUNS_DIR
os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_sessionfinish(session, exitstatus):
    """Delete the private run store: repeated sessions must not fill the disk (CI once ran out of space)."""
    if PRIVATE_RUNS_DIR:
        shutil.rmtree(PRIVATE_RUNS_DIR, ignore_errors=True)
