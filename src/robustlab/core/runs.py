"""One run, one folder: ``config.yaml``, ``metrics.jsonl``, ``checkpoints/``, ``results.json``,
``report.html``, ``figures/``.

A folder that already holds a run is never reused silently: ``resume=True`` continues it,
``overwrite=True`` replaces it, anything else is an error. A lock file stops two processes from
writing the same run at once (a lock left by a dead process is taken over).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
from pathlib import Path
from typing import Any

from robustlab.core.errors import RobustlabError
from robustlab.core.io import append_jsonl, atomic_write_text, read_json, read_jsonl, write_json, write_yaml

LOCK_NAME = ".lock"
RUN_MARKERS = ("config.yaml", "metrics.jsonl", "checkpoints", "results.json")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunDir:
    """A run folder. Create with :meth:`create` (new, resumed or overwritten) or :meth:`open` (read)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._locked = False

    # -- layout -----------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def results_path(self) -> Path:
        return self.path / "results.json"

    @property
    def report_path(self) -> Path:
        return self.path / "report.html"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def figures(self) -> Path:
        return self.path / "figures"

    def checkpoint(self, which: str = "best") -> Path:
        """Path of ``checkpoints/<which>.pt`` (``best`` or ``last``)."""
        return self.checkpoints / f"{which}.pt"

    # -- life cycle ---------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, resume: bool = False, overwrite: bool = False) -> RunDir:
        """Prepare ``path`` for writing a run and take its lock.

        New folder: created. Existing run: ``resume`` keeps it, ``overwrite`` empties it, neither
        raises :class:`RobustlabError`. Both flags together are an error.
        """
        if resume and overwrite:
            raise RobustlabError("--resume and --overwrite exclude each other; choose one")
        run = cls(path)
        exists = run.path.exists() and any(run.path.iterdir())
        if run.path.exists() and not run.path.is_dir():
            raise RobustlabError(f"{run.path} exists and is not a folder")
        if exists and not (resume or overwrite):
            raise RobustlabError(
                f"run folder {run.path} already exists; pass --resume to continue it or --overwrite to replace it"
            )
        if resume and not exists:
            raise RobustlabError(f"cannot --resume: {run.path} holds no run")
        run.path.mkdir(parents=True, exist_ok=True)
        run.acquire_lock()
        if exists and overwrite:
            for child in run.path.iterdir():
                if child.name == LOCK_NAME:
                    continue
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        run.checkpoints.mkdir(exist_ok=True)
        run.figures.mkdir(exist_ok=True)
        return run

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        """An existing run folder, for reading (evaluate, report, compare)."""
        run = cls(path)
        if not run.path.is_dir() or not any((run.path / m).exists() for m in RUN_MARKERS):
            raise RobustlabError(f"{run.path} is not a run folder (no config.yaml or results.json)")
        return run

    def acquire_lock(self) -> None:
        """Take the folder's lock or raise if a live process holds it."""
        lock = self.path / LOCK_NAME
        me = f"{os.getpid()}@{socket.gethostname()}"
        for _ in range(2):
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except OSError as e:
                if e.errno != errno.EEXIST:
                    raise
                holder = lock.read_text(errors="replace").strip() if lock.exists() else ""
                pid_s, _, host = holder.partition("@")
                if pid_s.isdigit() and host == socket.gethostname() and not _pid_alive(int(pid_s)):
                    lock.unlink(missing_ok=True)  # stale lock of a dead process
                    continue
                if holder == me:
                    self._locked = True
                    return
                raise RobustlabError(
                    f"run folder {self.path} is in use by process {holder or '?'} (lock file {lock})"
                ) from None
            with os.fdopen(fd, "w") as f:
                f.write(me)
            self._locked = True
            return
        raise RobustlabError(f"could not lock run folder {self.path}")

    def release_lock(self) -> None:
        """Drop the lock if this process holds it."""
        if self._locked:
            (self.path / LOCK_NAME).unlink(missing_ok=True)
            self._locked = False

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release_lock()

    # -- content --------------------------------------------------------------------------------
    def write_config(self, resolved: dict[str, Any]) -> None:
        write_yaml(self.config_path, resolved)

    def log_metrics(self, record: dict[str, Any]) -> None:
        append_jsonl(self.metrics_path, record)

    def metrics(self) -> list[dict[str, Any]]:
        return read_jsonl(self.metrics_path)

    def truncate_metrics(self, last_epoch: int, last_step: int | None = None) -> None:
        """Keep only the metric lines of epochs ≤ ``last_epoch`` — or, for lines that record their
        optimizer ``step`` (step-based training), of steps ≤ ``last_step`` — (used on resume)."""

        def keep(r: dict[str, Any]) -> bool:
            if last_step is not None and "step" in r:
                return r["step"] <= last_step
            return r.get("epoch", 0) <= last_epoch

        kept = [r for r in self.metrics() if keep(r)]
        atomic_write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in kept))

    def results(self) -> dict[str, Any]:
        return read_json(self.results_path) if self.results_path.exists() else {}

    def update_results(self, **sections: Any) -> dict[str, Any]:
        """Merge ``sections`` into ``results.json`` (atomically) and return the whole document."""
        data = self.results()
        data.update(sections)
        write_json(self.results_path, data)
        return data
