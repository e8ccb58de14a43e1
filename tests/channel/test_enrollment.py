"""Enrollment codes: single use, short-lived, exchanged in-process or over HTTP; the token
lands in a 0600 file and later starts reuse it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx2
import pytest

from channel.enrollment import (
    ENROLLMENT_TTL_S,
    CodeExchange,
    CredentialStore,
    EnrollmentFailed,
    HttpExchange,
    enroll,
)
from core.clock import FakeClock
from core.engine import Engine
from core.errors import Forbidden, Gone
from core.views import ViewedSecret
from tests.channel.conftest import code_of, recruited
from tests.mcp.conftest import live_app, serve_app


class CountingExchange:
    """An exchange that records every code it is asked to take."""

    def __init__(self, inner: CodeExchange) -> None:
        self.inner = inner
        self.taken: list[str] = []

    async def take(self, nonce: str) -> ViewedSecret:
        self.taken.append(nonce)
        return await self.inner.take(nonce)


def store_of(engine: Engine) -> CredentialStore:
    assert engine.settings.home is not None
    return CredentialStore(engine.settings.home)


async def test_a_code_works_once_and_the_token_file_is_private(engine: Engine) -> None:
    recruitment = await recruited(engine, name="w1")
    code = code_of(recruitment)
    credential = await enroll(code, "w1", engine.views, store_of(engine))
    path = store_of(engine).path("w1")
    assert path.name == "w1.token" and path.parent.name == "channel"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert credential.token in path.read_text(encoding="utf-8")
    assert code not in path.read_text(encoding="utf-8")
    with pytest.raises(Gone):
        await engine.views.take(code)


async def test_the_token_file_is_private_whatever_the_umask(engine: Engine) -> None:
    recruitment = await recruited(engine, name="w1")
    old = os.umask(0)
    try:
        await enroll(code_of(recruitment), "w1", engine.views, store_of(engine))
    finally:
        os.umask(old)
    assert stat.S_IMODE(store_of(engine).path("w1").stat().st_mode) == 0o600


async def test_a_later_start_reuses_the_stored_token_without_asking_again(
    engine: Engine,
) -> None:
    code = code_of(await recruited(engine, name="w1"))
    first = await enroll(code, "w1", engine.views, store_of(engine))
    counting = CountingExchange(engine.views)
    again = await enroll(code, "w1", counting, store_of(engine))
    assert again.token == first.token
    assert counting.taken == []


async def test_a_spent_code_with_no_stored_token_is_refused(engine: Engine,
                                                            tmp_path: Path) -> None:
    code = code_of(await recruited(engine, name="w1"))
    await enroll(code, "w1", engine.views, store_of(engine))
    elsewhere = CredentialStore(tmp_path / "other-home")
    with pytest.raises(EnrollmentFailed) as caught:
        await enroll(code, "w1", engine.views, elsewhere)
    assert caught.value.code == "GONE"
    assert "already used or has expired" in caught.value.message
    assert not elsewhere.path("w1").exists()


async def test_an_expired_code_is_refused(mrhome: Path) -> None:
    clock = FakeClock()
    async with Engine.open(mrhome, clock=clock) as engine:
        code = code_of(await recruited(engine, name="w1"))
        clock.advance(ENROLLMENT_TTL_S + 1)
        with pytest.raises(EnrollmentFailed):
            await enroll(code, "w1", engine.views, store_of(engine))


async def test_recruiting_again_replaces_the_stored_token(engine: Engine) -> None:
    first = await enroll(code_of(await recruited(engine, name="w1")), "w1", engine.views,
                         store_of(engine))
    second_code = code_of(await recruited(engine, name="w1"))
    second = await enroll(second_code, "w1", engine.views, store_of(engine))
    assert second.token != first.token
    assert store_of(engine).load("w1") == second
    assert (await engine.tokens.authenticate(second.token)).name == "w1"


async def test_a_spent_new_code_falls_back_to_the_stored_token_of_the_worker(
    engine: Engine,
) -> None:
    first = await enroll(code_of(await recruited(engine, name="w1")), "w1", engine.views,
                         store_of(engine))
    spent = code_of(await recruited(engine, name="w1"))
    await engine.views.take(spent)
    assert (await enroll(spent, "w1", engine.views, store_of(engine))).token == first.token


async def test_a_code_for_another_worker_is_refused(engine: Engine) -> None:
    code = code_of(await recruited(engine, name="w1"))
    with pytest.raises(Forbidden):
        await enroll(code, "w2", engine.views, store_of(engine))
    assert not store_of(engine).path("w2").exists()


async def test_over_http_the_code_is_exchanged_once_at_the_view_route(
    engine: Engine,
) -> None:
    code = code_of(await recruited(engine, name="w1"))
    async with serve_app(live_app(engine)) as url, httpx2.AsyncClient() as http:
        exchange = HttpExchange(url, http)
        credential = await enroll(code, "w1", exchange, store_of(engine), url=url)
        assert credential.url == url
        assert (await engine.tokens.authenticate(credential.token)).name == "w1"
        with pytest.raises(Gone):
            await exchange.take(code)
        with pytest.raises(Gone):
            await exchange.take("not-a-code")
