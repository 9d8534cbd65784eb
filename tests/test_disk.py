"""A test session leaves no checkpoints behind: the private run store and passing tests' tmp_path are deleted.

A session writes about 10 GB of checkpoints; kept, two or three sessions filled the disk and CI failed with
'No space left on device'. This runs a small pytest session with the project's settings and looks afterwards.
"""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

INNER_TEST = '''
import os
from pathlib import Path


def test_writes_a_checkpoint_into_the_store_and_its_tmp_path(tmp_path):
    Path(os.environ["RUNS_DIR"], "run.pt").write_bytes(b"x" * 1000)
    (tmp_path / "run.pt").write_bytes(b"x" * 1000)
    print("PATHS", os.environ["RUNS_DIR"], tmp_path)
    assert {FAIL} is False
'''


def run_inner_session(tmp_path, fail: bool):
    """Run one pytest session with the project's pyproject and conftest; return (exit code, store, tmp_path)."""
    test_file = tmp_path / "inner" / "test_inner.py"
    test_file.parent.mkdir()
    test_file.write_text(INNER_TEST.replace("{FAIL}", str(fail)))
    env = {k: v for k, v in os.environ.items() if k != "RUNS_DIR"}
    # Its own temp root, so the inner session's retention never touches the outer session's folders.
    env.update(PYTEST_DEBUG_TEMPROOT=str(tmp_path / "temproot"), PYTHONPATH=str(ROOT))
    (tmp_path / "temproot").mkdir()
    out = subprocess.run([sys.executable, "-m", "pytest", "-s", "-q", "-c", str(ROOT / "pyproject.toml"),
                          "--rootdir", str(tmp_path / "inner"), "-p", "conftest", str(test_file)],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    line = next((l for l in out.stdout.splitlines() if l.startswith("PATHS ")), None)
    assert line, out.stdout + out.stderr
    _, store, test_tmp = line.split()
    return out.returncode, Path(store), Path(test_tmp)


def test_a_passing_session_deletes_its_run_store_and_tmp_paths(tmp_path):
    code, store, test_tmp = run_inner_session(tmp_path, fail=False)
    assert code == 0
    assert not store.exists(), f"private run store {store} was left behind"
    assert not test_tmp.exists(), f"a passing test's tmp_path {test_tmp} was left behind"


def test_a_failing_session_keeps_the_failed_tests_tmp_path_but_not_the_store(tmp_path):
    code, store, test_tmp = run_inner_session(tmp_path, fail=True)
    assert code == 1
    assert not store.exists(), f"private run store {store} was left behind"
    assert (test_tmp / "run.pt").exists(), "a failed test's tmp_path should stay for inspection"
