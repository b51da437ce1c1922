"""One registry class for every kind of named component (attacks, defenses, models, datasets, labs,
augmentations).

A :class:`Registry` maps a normalised name (see :func:`robustlab.core.names.normalize`) to an entry:
a class, a builder function or a spec object. ``get`` of an unknown name raises the one-line
``unknown <kind> 'x'; choose one of: ...`` error; ``build`` calls the entry with keyword arguments and
names an unknown one; ``params`` lists an entry's keyword parameters and defaults. Entries may also
come from Python entry points (``entry_point_group``): they are loaded once, on first use, so a
third-party package adds a component without editing robustlab.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from robustlab.core.errors import RobustlabError, choice_error
from robustlab.core.names import normalize

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind.

    ``kind`` is the word used in errors ("attack", "lab"); ``entry_point_group`` the group whose entry
    points are loaded on first lookup (each entry point's object is registered under its name).
    """

    def __init__(self, kind: str, entry_point_group: str | None = None) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._entries: dict[str, T] = {}
        self._names: dict[str, str] = {}  # canonical key -> the name as registered (``small_cnn``)
        self._aliases: dict[str, str] = {}
        self._loaded_entry_points = entry_point_group is None

    # -- registration ---------------------------------------------------------------------------
    def register(self, name: str, entry: T | None = None, *, aliases: tuple[str, ...] = ()) -> Any:
        """Register ``entry`` under ``name`` (and ``aliases``); without ``entry``, a decorator.

        Lookups accept any spelling :func:`~robustlab.core.names.normalize` maps to the same key;
        :meth:`names` and errors show ``name`` as registered. Registering a name twice with a
        different entry is an error (a silent replacement would make the winner depend on import
        order)."""
        if entry is None:
            def decorator(obj: T) -> T:
                self.register(name, obj, aliases=aliases)
                return obj
            return decorator
        key = normalize(name)
        if key in self._entries and self._entries[key] is not entry:
            raise RobustlabError(f"{self.kind} {name!r} is registered twice")
        self._entries[key] = entry
        self._names[key] = name.strip()
        for alias in aliases:
            self._aliases[normalize(alias)] = key
        return entry

    def unregister(self, name: str) -> None:
        """Remove ``name`` (and its aliases); unknown names are ignored."""
        key = normalize(name)
        self._entries.pop(key, None)
        self._names.pop(key, None)
        self._aliases = {a: k for a, k in self._aliases.items() if k != key}

    # -- lookup ---------------------------------------------------------------------------------
    def _load_entry_points(self) -> None:
        if self._loaded_entry_points:
            return
        self._loaded_entry_points = True
        for ep in entry_points(group=self.entry_point_group):
            if normalize(ep.name) in self._entries:
                continue
            try:
                obj = ep.load()
            except Exception as e:  # a broken plug-in must not hide the others
                raise RobustlabError(
                    f"{self.kind} plug-in {ep.name!r} ({ep.value}) could not be loaded: {type(e).__name__}: {e}"
                ) from e
            self.register(ep.name, obj)

    def reload_entry_points(self) -> None:
        """Look at the installed entry points again (after installing or adding a plug-in)."""
        self._loaded_entry_points = self.entry_point_group is None
        self._load_entry_points()

    def key(self, name: str) -> str:
        """The canonical name of ``name`` or one of its aliases (unchanged if unknown)."""
        self._load_entry_points()
        key = normalize(name)
        return self._aliases.get(key, key)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.key(name) in self._entries

    def get(self, name: str) -> T:
        """The entry of ``name``; :class:`RobustlabError` listing the choices when unknown."""
        key = self.key(name)
        if key not in self._entries:
            raise choice_error(self.kind, name, self.names())
        return self._entries[key]

    def __getitem__(self, name: str) -> T:
        """``registry[name]`` is :meth:`get` (the one-line choice error when unknown)."""
        return self.get(name)

    def names(self) -> list[str]:
        """Every registered name as registered, sorted (aliases not included)."""
        self._load_entry_points()
        return sorted(self._names[k] for k in self._entries)

    def items(self) -> list[tuple[str, T]]:
        """``(name, entry)`` pairs sorted by name."""
        self._load_entry_points()
        return sorted(((self._names[k], e) for k, e in self._entries.items()), key=lambda item: item[0])

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    # -- building -------------------------------------------------------------------------------
    def params(self, name: str) -> dict[str, Any]:
        """Keyword parameters of the entry (a class's ``__init__`` or a function) with their defaults;
        parameters without a default map to ``None``."""
        return callable_params(self.get(name))

    def build(self, name: str, **kwargs: Any) -> Any:
        """Call the entry of ``name`` with ``kwargs``; an unknown keyword is a one-line error."""
        entry = self.get(name)
        if not callable(entry):
            raise RobustlabError(f"{self.kind} {name!r} cannot be built (it is not callable)")
        allowed = callable_params(entry)
        if not _takes_var_keywords(entry):
            unknown = [k for k in kwargs if k not in allowed]
            if unknown:
                choices = ", ".join(allowed) or "none"
                raise RobustlabError(
                    f"{self.kind} {self._names[self.key(name)]!r} has no parameter {unknown[0]!r}; "
                    f"parameters: {choices}"
                )
        return entry(**kwargs)


def _signature(obj: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(obj)
    except (TypeError, ValueError):
        return None


def callable_params(obj: Any, required: Any = None) -> dict[str, Any]:
    """Keyword parameters of ``obj`` (a class's ``__init__`` or a function) in signature order, with
    their defaults; a parameter without a default maps to ``required``. ``self``, ``*args`` and
    ``**kwargs`` are left out; ``{}`` when ``obj`` has no inspectable signature."""
    sig = _signature(obj)
    if sig is None:
        return {}
    out: dict[str, Any] = {}
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name in ("self", "cls"):
            continue
        out[p.name] = required if p.default is inspect.Parameter.empty else p.default
    return out


def _takes_var_keywords(obj: Any) -> bool:
    sig = _signature(obj)
    return sig is not None and any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
