"""Build frozen parameter dataclasses from plain YAML data, with errors that name file and field.

Every parameter dataclass validates itself in `__post_init__` by raising `FieldError`; the
builder here adds where the value came from (`flow5.yaml: stations[2].buffer_capacity_parts`).
"""

from __future__ import annotations

import dataclasses
import enum
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class LineDefinitionError(ValueError):
    """A line definition is malformed; the message names the source, the field and the value."""


class FieldError(ValueError):
    """Raised by a parameter class's validation; `field` is relative to that class."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def require(ok: bool, field: str, message: str) -> None:
    """Raise `FieldError(field, message)` unless `ok`."""
    if not ok:
        raise FieldError(field, message)


def non_negative(obj: object, *names: str) -> None:
    """Check that the named numeric fields of `obj` are finite and >= 0."""
    for name in names:
        value = getattr(obj, name)
        require(value is None or 0 <= value < float("inf"), name, f"must be >= 0 and finite, got {value!r}")


def positive(obj: object, *names: str) -> None:
    """Check that the named numeric fields of `obj` are finite and > 0."""
    for name in names:
        value = getattr(obj, name)
        require(value is None or 0 < value < float("inf"), name, f"must be > 0 and finite, got {value!r}")


def finite(obj: object, *names: str) -> None:
    """Check that the named numeric fields of `obj` are finite (not NaN or infinite)."""
    for name in names:
        value = getattr(obj, name)
        require(math.isfinite(value), name, f"must be a finite number, got {value!r}")


def at_least(obj: object, low: float, *names: str) -> None:
    """Check that the named numeric fields of `obj` are finite and >= `low`."""
    for name in names:
        value = getattr(obj, name)
        require(low <= value < float("inf"), name, f"must be >= {low:g} and finite, got {value!r}")


def probability(obj: object, *names: str) -> None:
    """Check that the named fields of `obj` lie in [0, 1]."""
    for name in names:
        value = getattr(obj, name)
        require(0.0 <= value <= 1.0, name, f"must lie in [0, 1], got {value!r}")


def build(cls: type[T], data: Any, source: str, path: str = "") -> T:
    """Build dataclass `cls` from mapping `data`; `source` names the file in error messages."""
    try:
        return _build_dataclass(cls, data, path)
    except _LocatedError as exc:
        where = f"{source}: {exc.path}" if exc.path else source
        raise LineDefinitionError(f"{where}: {exc}") from None


class _LocatedError(ValueError):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path and not name.startswith("[") else f"{path}{name}"


def _build_dataclass(cls: type[T], data: Any, path: str) -> T:
    if not isinstance(data, Mapping):
        raise _LocatedError(path, f"expected a mapping of {cls.__name__} fields, got {data!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted((str(k), isinstance(k, bool)) for k in data if k not in known)
    if unknown:
        name, was_bool = unknown[0]
        hint = " (YAML reads unquoted on/off/yes/no as booleans: quote the key)" if was_bool else ""
        raise _LocatedError(_join(path, name), f"unknown field{hint} (known fields: {', '.join(sorted(known))})")
    kwargs = {}
    for name, f in known.items():
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], _join(path, name))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise _LocatedError(_join(path, name), "required field is missing")
    try:
        return cls(**kwargs)
    except FieldError as exc:
        raise _LocatedError(_join(path, exc.field), str(exc)) from None


def _convert(hint: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            if type(None) in args:
                return None
            raise _LocatedError(path, "must not be null")
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value, path)
    if value is None:
        raise _LocatedError(path, "must not be null")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise _LocatedError(path, f"expected a list, got {value!r}")
        item = args[0]
        return tuple(_convert(item, v, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise _LocatedError(path, f"expected a mapping, got {value!r}")
        return {str(k): _convert(args[1], v, _join(path, str(k))) for k, v in value.items()}
    if dataclasses.is_dataclass(hint):
        return _build_dataclass(hint, value, path)  # type: ignore[arg-type]
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError:
            options = ", ".join(str(m.value) for m in hint)
            raise _LocatedError(path, f"must be one of {options}, got {value!r}") from None
    return _scalar(hint, value, path)


_SCALARS: dict[type, tuple[tuple[type, ...], str]] = {
    bool: ((bool,), "true or false"),
    float: ((int, float), "a number"),
    int: ((int,), "a whole number"),
    str: ((str,), "a string"),
}


def _scalar(hint: Any, value: Any, path: str) -> Any:
    if hint not in _SCALARS:
        raise TypeError(f"unsupported parameter type {hint!r} at {path}")
    accepted, what = _SCALARS[hint]
    ok = isinstance(value, accepted) and not (isinstance(value, bool) and hint is not bool)
    if not ok:
        raise _LocatedError(path, f"expected {what}, got {value!r}")
    return hint(value)
