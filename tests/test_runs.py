import os
import subprocess
import sys

import pytest

from robustlab.core.errors import RobustlabError
from robustlab.core.io import atomic_write, read_jsonl
from robustlab.core.runs import RunDir


def test_new_run_layout(tmp_path):
    run = RunDir.create(tmp_path / "r")
    assert run.checkpoints.is_dir() and run.figures.is_dir()
    run.write_config({"a": 1})
    run.log_metrics({"epoch": 1, "x": 0.5})
    run.log_metrics({"epoch": 2, "x": float("nan")})
    assert [r["epoch"] for r in run.metrics()] == [1, 2]
    assert run.metrics()[1]["x"] is None  # NaN is written as null, never as invalid JSON
    run.release_lock()


def test_existing_run_is_never_overwritten_silently(tmp_path):
    RunDir.create(tmp_path / "r").release_lock()
    (tmp_path / "r" / "config.yaml").write_text("a: 1\n")
    with pytest.raises(RobustlabError, match="--resume .* --overwrite"):
        RunDir.create(tmp_path / "r")
    run = RunDir.create(tmp_path / "r", resume=True)
    assert (tmp_path / "r" / "config.yaml").exists()
    run.release_lock()
    run = RunDir.create(tmp_path / "r", overwrite=True)
    assert not (tmp_path / "r" / "config.yaml").exists()
    run.release_lock()
    with pytest.raises(RobustlabError, match="exclude each other"):
        RunDir.create(tmp_path / "r", resume=True, overwrite=True)


def test_resume_needs_a_run(tmp_path):
    with pytest.raises(RobustlabError, match="holds no run"):
        RunDir.create(tmp_path / "empty", resume=True)


def test_lock_refuses_a_second_live_writer(tmp_path):
    run_path = tmp_path / "r"
    child = subprocess.Popen(
        [sys.executable, "-c",
         f"from robustlab.core.runs import RunDir; import time; RunDir.create({str(run_path)!r}); "
         "print('locked', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(RobustlabError, match="in use by process"):
            RunDir.create(run_path, resume=True)
    finally:
        child.kill()
        child.wait()
    # the holder died: its stale lock is taken over
    RunDir.create(run_path, resume=True).release_lock()


def test_truncate_metrics_on_resume(tmp_path):
    run = RunDir.create(tmp_path / "r")
    for e in range(1, 5):
        run.log_metrics({"epoch": e})
    run.truncate_metrics(2)
    assert [r["epoch"] for r in read_jsonl(run.metrics_path)] == [1, 2]
    run.release_lock()


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")

    def boom(f):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        atomic_write(target, boom)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]  # no temp file left behind
    assert oct(os.stat(target).st_mode & 0o777)  # readable file
