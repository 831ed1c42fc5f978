"""Read line definition files: YAML, optionally composed from sibling files like Hydra's defaults.

A file may start with `defaults: [flow5, _self_]`: the named files (`flow5.yaml`) are merged in
order, `_self_` standing for the file's own content (last if not listed). Each is the sibling file
of that name, else the first of that name in the folders of `search` (`envs.lines` searches the
shipped lines, so a user's own line file can build on a shipped one from anywhere, as it can in a
Hydra search path). Mappings merge key by key;
any other value, lists included, replaces what came before. Hydra composes such a file the same
way, so one format serves `TwinLine.from_yaml` and the `line/` config group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from hardware.twin.schema import LineDefinitionError


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Return `base` with `over` merged in: mappings recursively, other values replaced."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def load_definition(path: Path, search: Sequence[Path] = (), _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Load a line definition file with its `defaults` composed in (each a sibling, else found in `search`)."""
    path = path.resolve()
    if path in _seen:
        chain = " -> ".join(p.name for p in (*_seen, path))
        raise LineDefinitionError(f"{path}: defaults form a cycle: {chain}")
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise LineDefinitionError(f"{path}: cannot read line definition: {exc}") from exc
    if not isinstance(data, Mapping):
        raise LineDefinitionError(f"{path}: a line definition is a mapping, got {type(data).__name__}")
    own = {k: v for k, v in data.items() if k != "defaults"}
    defaults = data.get("defaults", ["_self_"])
    if not isinstance(defaults, list) or not all(isinstance(d, str) for d in defaults):
        raise LineDefinitionError(f"{path}: defaults: expected a list of line file names, got {defaults!r}")
    if "_self_" not in defaults:
        defaults = [*defaults, "_self_"]
    composed: dict[str, Any] = {}
    for entry in defaults:
        part = own if entry == "_self_" else load_definition(_base_file(path, entry, search), search, (*_seen, path))
        composed = merge(composed, part)
    return composed


def _base_file(path: Path, entry: str, search: Sequence[Path]) -> Path:
    """The file a `defaults` entry of `path` names: its sibling, else the first in `search` (the sibling if none)."""
    sibling = path.parent / f"{entry}.yaml"
    found = [folder / f"{entry}.yaml" for folder in search if (folder / f"{entry}.yaml").is_file()]
    return found[0] if found and not sibling.is_file() else sibling
