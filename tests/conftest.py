"""Shared fixtures: the shipped line definitions, loaded once; an event loop in a thread for fake servers."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from typing import Any

# One math thread a process, set before torch is imported: the suite's networks are tiny, and its
# training subprocesses and ARS workers share the machine's cores with it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
import yaml

from tests.lines import FLOW5


@pytest.fixture(scope="session", autouse=True)
def sb3_log_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    """SB3's models without a TensorBoard folder log to `SB3_LOGDIR`, else to a new folder in /tmp per model."""
    os.environ["SB3_LOGDIR"] = str(tmp_path_factory.mktemp("sb3"))


@pytest.fixture(scope="session")
def flow5_definition() -> dict[str, Any]:
    """The default line's definition as plain data."""
    return yaml.safe_load(FLOW5.read_text())


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """An asyncio event loop running in a thread of its own, for servers (a fake PLC) the tests talk to."""
    running = asyncio.new_event_loop()
    thread = threading.Thread(target=running.run_forever, daemon=True)
    thread.start()
    yield running
    running.call_soon_threadsafe(running.stop)
    thread.join(5)
