"""Test session set-up: the smoke profile and a private run store, for unit tests and nbval alike."""
import os
import tempfile

# Notebooks executed by nbval read PROFILE through profile="auto"; tests never train on a profile
# bigger than smoke, and never touch the user's runs/.
if os.environ.get("PROFILE", "auto") in ("", "auto"):
    os.environ["PROFILE"] = "smoke"
os.environ.setdefault("RUNS_DIR", tempfile.mkdtemp(prefix="runs-test-"))
os.environ.setdefault("MPLBACKEND", "Agg")
