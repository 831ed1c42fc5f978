"""Config errors a newcomer can act on: one line, the full key, the nearest real key or option.

Entry points run their `@hydra.main` function through `run`, which turns any config error (a bad
override, our own `ConfigError`, a library refusing a configured value) into one line on stderr
and exit status 1; so too a line over Modbus that fails (its message names the PLC's address and
registers). `HYDRA_FULL_ERROR=1` keeps the full traceback.
"""

from __future__ import annotations

import difflib
import inspect
import logging
import math
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException, InstantiationException, MissingConfigException
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from configs import options
from hardware.modbus.errors import ModbusLineError

FULL_ERROR = "HYDRA_FULL_ERROR"
HINT = f"set {FULL_ERROR}=1 for the full traceback"

_UNEXPECTED = re.compile(r"unexpected keyword argument '(\w+)'")
_MISSING_OPTION = re.compile(r"Could not find '([\w/]+)/(\w+)'")
_KEY_PARENTS = ("parent_node", "object")


class ConfigError(ValueError):
    """The composed config cannot run; the message starts with the full key, e.g. `agent.learning_rate:`."""


def whole_number(key: str, value: Any, least: int = 1) -> int:
    """`value` if it is a whole number of at least `least`, else a `ConfigError` naming `key`.

    A boolean is refused although Python counts `True` as 1: `n_envs=true` is a slip, not one env.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        kind = "a positive whole number" if least == 1 else f"a whole number >= {least}"
        raise ConfigError(f"{key}: must be {kind}, got {value!r}")
    return value


def positive_number(key: str, value: Any) -> float:
    """`value` as a float if it is a finite number above 0, else a `ConfigError` naming `key`."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise ConfigError(f"{key}: must be a positive number, got {value!r}")
    return float(value)


def distinct(key: str, values: Iterable[Any]) -> list[Any]:
    """`values` as a list, or a `ConfigError` naming `key` and the first value named twice.

    A policy, scenario or grid value named twice would run twice on the same seeds, and its rows,
    pooled under one label, would count as twice the seeds: intervals too narrow.
    """
    seen: list[Any] = []
    for value in values:
        if value in seen:
            raise ConfigError(
                f"{key}: {value!r} is named twice; name each once (its runs would be pooled as more seeds)"
            )
        seen.append(value)
    return seen


def scenario_names(key: str, values: Iterable[Any]) -> list[str]:
    """The shipped scenarios `values` names, at least one and each once, or a `ConfigError` naming `key`."""
    names = distinct(key, (str(v) for v in values))
    if not names:
        raise ConfigError(f"{key}: name at least one scenario, e.g. '{key}=[none]'")
    shipped = options("scenario")
    unknown = [n for n in names if n not in shipped]
    if unknown:
        raise ConfigError(
            f"{key}: {unknown[0]!r} is not a shipped scenario{did_you_mean(unknown[0], shipped)}; "
            f"choose from {', '.join(shipped)}"
        )
    return names


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """` (did you mean X?)` for the choice nearest `word`, or an empty string when none is near."""
    close = difflib.get_close_matches(word, [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def one_line(exc: BaseException) -> str:
    """The innermost message of `exc` (following `raise ... from`), its lines joined with '; '."""
    inner = exc
    while isinstance(inner, InstantiationException) and inner.__cause__ is not None:
        inner = inner.__cause__
    lines = [line.strip() for line in str(inner).splitlines() if line.strip()]
    return "; ".join(lines) or type(inner).__name__


def parameter_error(
    exc: BaseException, prefix: str, section: DictConfig, accepted: Mapping[str, inspect.Parameter]
) -> ConfigError:
    """A `ConfigError` naming the full key for an error a library raised on the values of `section`.

    Args:
        exc: what SB3, Gymnasium or Hydra's `instantiate` raised.
        prefix: where `section` sits in the config, e.g. `agent` or `task.kwargs`.
        section: the config values that were passed.
        accepted: the callee's parameters (`inspect.signature(...).parameters`), for a suggestion
            when a name is unknown and to spot a text where a number belongs.
    """
    text = one_line(exc)
    unknown = _UNEXPECTED.search(text)
    if unknown:
        key = unknown.group(1)
        hint = did_you_mean(f"{prefix}.{key}", (f"{prefix}.{a}" for a in accepted))
        return ConfigError(f"{prefix}.{key}: not a parameter here{hint}")
    named = [str(k) for k in section if re.search(rf"\b{re.escape(str(k))}\b", text)]
    if named:
        return ConfigError(f"{prefix}.{max(named, key=len)}: {text}")
    for key, value in section.items():
        name = str(key)
        default = accepted[name].default if name in accepted else None
        if isinstance(value, str) and isinstance(default, int | float) and not isinstance(default, bool):
            return ConfigError(f"{prefix}.{name}: expected a number, got {value!r}")
    return ConfigError(f"{prefix}: {text}")


def explain(exc: BaseException) -> str | None:
    """One line that says what is wrong with the config, or None when `exc` is not a config error."""
    if isinstance(exc, ConfigError):
        return one_line(exc)
    if isinstance(exc, MissingConfigException):
        return _missing_option(exc)
    if isinstance(exc, HydraException):
        return _bad_key(exc.__cause__) or one_line(exc)
    if isinstance(exc, OmegaConfBaseException):
        return _bad_key(exc) or one_line(exc)
    return None


def _missing_option(exc: MissingConfigException) -> str:
    found = _MISSING_OPTION.search(str(exc))
    if not found:
        return one_line(exc).split("; Config search path")[0]
    group, name = found.groups()
    shipped = options(group)
    return f"{group}={name}: no such option{did_you_mean(name, shipped)}; options: {', '.join(shipped)}"


def _bad_key(exc: BaseException | None) -> str | None:
    """For a key that does not exist: its full key, the nearest real one, and how to add a new key."""
    full_key = getattr(exc, "full_key", None)
    parent = next((getattr(exc, a) for a in _KEY_PARENTS if isinstance(getattr(exc, a, None), DictConfig)), None)
    if not full_key or parent is None or ("not in struct" not in str(exc) and "Missing key" not in str(exc)):
        return None
    prefix = full_key.rpartition(".")[0]
    siblings = [f"{prefix}.{k}" if prefix else str(k) for k in parent]
    return f"{full_key}: no such key{did_you_mean(full_key, siblings)}; to add a new key write +{full_key}=..."


class _Mode:
    """Whether config errors end the process with one line (set by `run`, unless the user asked for tracebacks).

    Also the folder this process's sweep claimed (`sweep_claimed`), removed by `run` if the sweep
    fails with nothing in it but Hydra's and the claim's files.
    """

    one_line = False
    sweep_dir: Path | None = None


def _exit(exc: Exception) -> None:
    if isinstance(exc, ModbusLineError):
        sys.exit(f"line error: {exc}")
    message = explain(exc)
    if message is None:
        raise exc
    sys.exit(f"config error: {message} ({HINT})")


INTERRUPTED = 130  # exit status after Ctrl-C, as a shell gives a process stopped by SIGINT
JOB_CLAIM = ".job.json"  # in a sweep job's folder: which job it is, and its `.hydra/` files (`run_folders`)
SWEEP_CLAIM = ".sweep.json"  # in a sweep's folder: the sweep that checked it fresh (`run_folders`)
_SWEEP_FILES = ("multirun.yaml", SWEEP_CLAIM)  # what a sweep's folder holds before any job writes into it


def discard_if_empty(run_dir: Path) -> None:
    """Remove a run folder that holds nothing but what Hydra wrote before the job (`.hydra/`, the log, the claim)."""
    if run_dir.is_dir() and all(p.name in (".hydra", JOB_CLAIM) or p.suffix == ".log" for p in run_dir.iterdir()):
        shutil.rmtree(run_dir)


def sweep_claimed(folder: Path) -> None:
    """Note that this process's sweep claimed `folder` (`run_folders`): `run` removes it if the sweep fails empty."""
    _Mode.sweep_dir = folder


def _discard_failed_sweep() -> None:
    """Remove the claimed sweep folder if no job left anything in it (each failed job removed its own empty folder).

    Its `multirun.yaml` and claim alone would make the same command, run again once corrected,
    refused for a folder that already holds files.
    """
    folder, _Mode.sweep_dir = _Mode.sweep_dir, None
    if folder is not None and folder.is_dir() and all(p.name in _SWEEP_FILES for p in folder.iterdir()):
        shutil.rmtree(folder)


@contextmanager
def one_line_errors(run_dir: Path | None = None) -> Iterator[None]:
    """Inside a `@hydra.main` function: a config error ends the process with one line on stderr.

    On any error, `run_dir` is removed if the job wrote nothing into it (see `discard_if_empty`),
    so a run that failed before its work leaves no empty folder. Outside `run` (tests,
    `HYDRA_FULL_ERROR=1`) errors then pass through unchanged. Handling them in the job, not after
    it, keeps Hydra from adding its own "Error executing job" line.
    """
    try:
        yield
    except Exception as exc:
        if run_dir is not None:
            discard_if_empty(run_dir)
        _name_failed_job(exc)
        if not _Mode.one_line:
            raise
        _exit(exc)


def _name_failed_job(exc: Exception) -> None:
    """In a sweep's job, print which job failed and why: a launcher reports only the first failure it collects."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return
    hydra_cfg = HydraConfig.get()
    why = f"line error: {exc}" if isinstance(exc, ModbusLineError) else explain(exc) or f"{type(exc).__name__}: {exc}"
    overrides = " ".join(hydra_cfg.overrides.task)
    print(f"job {hydra_cfg.job.num} ({overrides}) failed: {why}", file=sys.stderr, flush=True)


def quiet_pymodbus() -> None:
    """Keep pymodbus's own log lines (`Connection to ... failed`) off the console: a line error says it, once."""
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


def run(main: Callable[[], Any]) -> None:
    """Call a `@hydra.main` entry point; a config or line error ends it with one line on stderr and status 1.

    Ctrl-C ends it with one line and status `INTERRUPTED`, its run folder left as it is.
    """
    if os.environ.get(FULL_ERROR) == "1":
        main()
        return
    quiet_pymodbus()
    os.environ[FULL_ERROR] = "1"  # Hydra then re-raises a composition error whole instead of printing it
    _Mode.one_line, _Mode.sweep_dir = True, None
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted: what the run wrote until now stays in its folder", file=sys.stderr)
        sys.exit(INTERRUPTED)
    except SystemExit as exc:  # a job's one-line error, or a refusal before any job
        if exc.code not in (0, None):
            _discard_failed_sweep()
        raise
    except Exception as exc:
        _discard_failed_sweep()
        _exit(exc)
    finally:
        del os.environ[FULL_ERROR]
        _Mode.one_line = False
        _Mode.sweep_dir = None
