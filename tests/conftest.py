from __future__ import annotations

import inspect
import os
from pathlib import Path

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> None:
    """Every ``async def`` test runs on anyio (asyncio backend), with its async fixtures
    set up and torn down in the same task, so task groups inside fixtures work."""
    if inspect.iscoroutinefunction(obj) and name.startswith("test"):
        pytest.mark.anyio(obj)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private, empty ``$MODELREINS_HOME``."""
    path = tmp_path / "mrhome"
    path.mkdir()
    monkeypatch.setenv("MODELREINS_HOME", str(path))
    for var in ("MODELREINS_URL", "MODELREINS_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    return path


@pytest.fixture(autouse=True)
def _no_ambient_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's real keys or home."""
    for var in list(os.environ):
        if var.endswith("_API_KEY"):
            monkeypatch.delenv(var, raising=False)
