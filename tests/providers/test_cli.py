from __future__ import annotations

import shlex
from collections.abc import Iterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

import anyio
import pydantic
import pytest

from core.errors import ProviderError, ProviderTimeout
from core.http_client import HttpClient
from core.models import Message
from core.providers import provider_class
from core.providers.base import ProviderCall, StreamEnd, TextDelta
from core.providers.cli import DEFAULT_MAX_OUTPUT_BYTES, CliConfig, CliProvider, render_prompt
from core.providers.echo import EchoConfig
from tests.fakes_cli import (
    CAT,
    CAT_TO_FILE,
    FAIL,
    FLOOD,
    GATED,
    HANG,
    PRINT_CWD,
    PRINT_ENV,
    UPPER,
    Gate,
    is_running,
    kill_listed,
    make_cli,
    pwned_files,
    read_pids,
    wait_dead,
)
from tests.providers.helpers import KEY, ask, assert_no_secret, drain, events_of, failure

MiB = 1024 * 1024

NASTY = (
    "$(touch PWNED) `touch PWNED` ; rm -rf ./* ; touch PWNED | cat && touch PWNED > PWNED\n"
    "'single' \"double\" \\ back\\slash $HOME ${PATH} !! * ? ~ # not a comment\n"
    "ünïcødé — 日本語 🚀\r\n\ttabs and trailing spaces   \n"
)
"""A prompt that would do damage if any shell ever saw it."""


@pytest.fixture
def pid_file(tmp_path: Path) -> Iterator[Path]:
    """Where a HANG or LEAVE_ORPHAN fake lists its pids; what still runs is killed afterwards."""
    path = tmp_path / "pids"
    yield path
    kill_listed(path)


def cli(http: HttpClient, command: str | list[str | Path], **keys: Any) -> CliProvider:
    """A ``cli`` provider built from config keys as a user writes them."""
    if not isinstance(command, str):
        command = [str(part) for part in command]
    config = CliConfig.model_validate({"type": "cli", "command": command, **keys})
    return CliProvider("local", config, http)


def conversation(*turns: str, system: str | None = None) -> ProviderCall:
    roles = ("user", "assistant")
    messages = [Message(role=roles[i % 2], content=text) for i, text in enumerate(turns)]
    return ProviderCall(messages=messages, system=system)


async def answer(provider: CliProvider, call: ProviderCall, *, streaming: bool) -> str:
    if streaming:
        deltas, _ = await drain(provider, call)
        return "".join(deltas)
    return (await provider.complete(call)).text


def test_the_config_reads_the_keys_users_write() -> None:
    config = CliConfig.model_validate(
        {
            "type": "cli",
            "command": "claude --print --dangerously-skip-permissions",
            "workdir": "~/jobs",
            "env": {"ANTHROPIC_API_KEY": KEY},
            "maxOutputBytes": 4096,
            "timeout": 120000,
        }
    )
    assert config.argv == ["claude", "--print", "--dangerously-skip-permissions"]
    assert config.workdir == Path("~/jobs").expanduser()
    assert config.max_output_bytes == 4096
    assert config.timeout_s == 120.0
    assert KEY not in repr(config)


def test_the_config_has_defaults_and_takes_an_argv_list() -> None:
    config = CliConfig.model_validate({"type": "cli", "command": ["my tool", "--flag"]})
    assert config.argv == ["my tool", "--flag"]
    assert config.max_output_bytes == DEFAULT_MAX_OUTPUT_BYTES == 10 * MiB
    assert (config.env, config.workdir) == ({}, None)


def test_env_values_are_the_secrets_of_the_config() -> None:
    assert CliConfig(command="x").secret_fields() == ("env",)


@pytest.mark.parametrize(
    "keys",
    [
        {},
        {"command": ""},
        {"command": []},
        {"command": "claude 'unbalanced"},
        {"command": "x", "maxOutputBytes": 0},
        {"command": "x", "workingDir": "/tmp"},
    ],
)
def test_the_config_rejects_missing_empty_unsplittable_and_unknown_keys(
    keys: dict[str, Any],
) -> None:
    with pytest.raises(pydantic.ValidationError):
        CliConfig.model_validate({"type": "cli", **keys})


async def test_cli_is_registered_under_its_type_name(http: HttpClient) -> None:
    assert provider_class("cli") is CliProvider
    with pytest.raises(TypeError):
        CliProvider("local", EchoConfig(), http)


@pytest.mark.parametrize(
    ("call", "stdin"),
    [
        (conversation("just this\n"), "just this\n"),
        (conversation("hi", system="Be brief."), "Be brief.\n\nhi"),
        (conversation("a", "b", "c"), "User: a\n\nAssistant: b\n\nUser: c"),
        (conversation("a", "b", "c", system="S"), "S\n\nUser: a\n\nAssistant: b\n\nUser: c"),
        (ProviderCall(messages=[Message(role="assistant", content="x")]), "Assistant: x"),
    ],
)
def test_render_prompt_is_the_message_alone_or_a_transcript_after_the_system_prompt(
    call: ProviderCall, stdin: str
) -> None:
    assert render_prompt(call.messages, call.system) == stdin


@pytest.mark.parametrize("streaming", [False, True])
async def test_a_prompt_full_of_shell_syntax_arrives_byte_for_byte_and_no_shell_runs(
    http: HttpClient, tmp_path: Path, streaming: bool
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    received = tmp_path / "received.bin"
    script = make_cli(tmp_path, "cat-to-file", CAT_TO_FILE)
    # The string form, with shell syntax in an argument too: split, never interpreted.
    command = f"{shlex.quote(str(script))} {shlex.quote(str(received))} '$(touch PWNED)'"
    provider = cli(http, command, workdir=str(work))
    assert await answer(provider, ask(NASTY), streaming=streaming) == NASTY
    assert received.read_bytes() == NASTY.encode()
    assert pwned_files(tmp_path) == []


@pytest.mark.parametrize("call_system", [None, "Call system."])
async def test_a_conversation_arrives_as_a_transcript_after_the_system_prompt(
    http: HttpClient, tmp_path: Path, call_system: str | None
) -> None:
    received = tmp_path / "received.bin"
    provider = cli(
        http,
        [make_cli(tmp_path, "cat-to-file", CAT_TO_FILE), received],
        systemPrompt="Config system.",
    )
    await provider.complete(conversation("Hi", "Hello!", "Sum 2+2", system=call_system))
    system = call_system or "Config system."
    assert received.read_text() == f"{system}\n\nUser: Hi\n\nAssistant: Hello!\n\nUser: Sum 2+2"


async def test_the_answer_is_stdout_with_approximate_word_usage(
    http: HttpClient, tmp_path: Path
) -> None:
    provider = cli(http, [make_cli(tmp_path, "upper", UPPER)])
    done = await provider.complete(ask("three small words"))
    assert done.text == "THREE SMALL WORDS"
    assert (done.usage.input_tokens, done.usage.output_tokens) == (3, 3)
    assert done.truncated is False


@pytest.mark.parametrize(
    ("config_model", "call_model", "expected"),
    [(None, None, "upper"), ("cfg-model", None, "cfg-model"), ("cfg-model", "call", "call")],
)
@pytest.mark.parametrize("streaming", [False, True])
async def test_the_model_is_the_call_s_then_the_config_s_then_the_executable_name(
    http: HttpClient,
    tmp_path: Path,
    config_model: str | None,
    call_model: str | None,
    expected: str,
    streaming: bool,
) -> None:
    provider = cli(http, [make_cli(tmp_path, "upper", UPPER)], model=config_model)
    call = ask("hi", model=call_model)
    if streaming:
        _, end = await drain(provider, call)
        assert end.model == expected
    else:
        assert (await provider.complete(call)).model == expected


@pytest.mark.parametrize("streaming", [False, True])
async def test_a_non_zero_exit_is_a_retriable_provider_error_with_code_and_stderr_tail(
    http: HttpClient, tmp_path: Path, streaming: bool
) -> None:
    provider = cli(http, [make_cli(tmp_path, "fail", FAIL)])
    deltas, error = await failure(provider, ask("q"), streaming=streaming)
    assert isinstance(error, ProviderError)
    assert error.retriable is True
    assert error.provider == "local"
    assert "exited with code 3" in error.message
    assert error.message.endswith("boom: something broke")
    assert isinstance(error.details, dict)
    assert error.details["exitCode"] == 3
    assert error.details["stderrTail"].endswith("boom: something broke\n")
    # Streaming: what was printed is delivered first, then the failure, never a silent end.
    assert deltas == (["partial answer"] if streaming else [])


@pytest.mark.parametrize("then", ["sys.exit(1)", "time.sleep(3600)"])
async def test_config_env_values_never_appear_in_errors(
    http: HttpClient, tmp_path: Path, then: str
) -> None:
    body = f"""
        import os, sys, time
        sys.stderr.write("rejected key " + os.environ["MR_TOKEN"])
        sys.stderr.flush()
        {then}
    """
    provider = cli(http, [make_cli(tmp_path, "leaky", body)], env={"MR_TOKEN": KEY}, timeout=400)
    _, error = await failure(provider, ask("q"), streaming=False)
    assert isinstance(error.details, dict)
    assert error.details["stderrTail"] == "rejected key ***"
    assert_no_secret(error)
    assert KEY not in str(error.details)


async def test_a_prompt_that_is_not_valid_unicode_is_sent_with_replacement(
    http: HttpClient, tmp_path: Path
) -> None:
    provider = cli(http, [make_cli(tmp_path, "cat", CAT)])
    assert (await provider.complete(ask("a\ud800b"))).text == "a?b"


@pytest.mark.parametrize("streaming", [False, True])
async def test_a_timeout_is_a_provider_timeout_and_the_group_is_killed(
    http: HttpClient, tmp_path: Path, pid_file: Path, streaming: bool
) -> None:
    provider = cli(http, [make_cli(tmp_path, "hang", HANG), pid_file], timeout=400)
    _, error = await failure(provider, ask("q"), streaming=streaming)
    assert isinstance(error, ProviderTimeout)
    assert error.provider == "local"
    assert "timed out after 0.4 s and was killed" in error.message
    pid, grandchild = read_pids(pid_file)
    for each in (pid, grandchild):
        await wait_dead(each)
        assert not is_running(each)


async def test_output_past_the_cap_is_a_truncated_completion(
    http: HttpClient, tmp_path: Path
) -> None:
    provider = cli(http, [make_cli(tmp_path, "flood", FLOOD), 3 * MiB], maxOutputBytes=MiB)
    done = await provider.complete(ask("q"))
    assert done.truncated is True
    assert done.text == "x" * MiB
    deltas, end = await drain(provider, ask("q"))
    assert end.truncated is True
    assert "".join(deltas) == "x" * MiB


@pytest.mark.parametrize("streaming", [False, True])
async def test_a_character_cut_by_the_cap_is_dropped_not_replaced(
    http: HttpClient, tmp_path: Path, streaming: bool
) -> None:
    # Five bytes of "ééé" (two bytes each) end in half an "é".
    provider = cli(http, [make_cli(tmp_path, "cat", CAT)], maxOutputBytes=5)
    assert await answer(provider, ask("ééé"), streaming=streaming) == "éé"


async def test_stream_yields_as_stdout_arrives_and_keeps_split_characters_whole(
    http: HttpClient, tmp_path: Path
) -> None:
    events: list[TextDelta | StreamEnd] = []
    with Gate(tmp_path / "gate") as gate:
        # "é" is c3 a9: the first write ends after c3, the rest waits behind the gate.
        provider = cli(
            http, [make_cli(tmp_path, "gated", GATED), gate.path, b"a\xc3".hex(), b"\xa9b".hex()]
        )
        with anyio.fail_after(10):
            async with aclosing(events_of(provider, ask("q"))) as stream:
                async for event in stream:
                    if not events:
                        # The command is blocked on the gate: this event came before its exit.
                        gate.open()
                    events.append(event)
    assert events[:-1] == [TextDelta("a"), TextDelta("éb")]
    assert isinstance(events[-1], StreamEnd)
    assert events[-1].truncated is False


async def test_closing_a_stream_early_kills_the_command(
    http: HttpClient, tmp_path: Path, pid_file: Path
) -> None:
    provider = cli(http, [make_cli(tmp_path, "hang", HANG), pid_file])
    async with aclosing(events_of(provider, ask("q"))) as stream:
        async for event in stream:
            assert isinstance(event, TextDelta)
            break
    pid, grandchild = read_pids(pid_file)
    for each in (pid, grandchild):
        await wait_dead(each)
        assert not is_running(each)


async def test_the_command_sees_config_env_over_the_inherited_environment(
    http: HttpClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MR_INHERITED", "inherited")
    monkeypatch.setenv("MR_BOTH", "inherited")
    names = ["MR_INHERITED", "MR_CONFIG", "MR_BOTH"]
    provider = cli(
        http,
        [make_cli(tmp_path, "env", PRINT_ENV), *names],
        env={"MR_CONFIG": "config", "MR_BOTH": "config wins"},
    )
    done = await provider.complete(ask("q"))
    assert done.text == "MR_INHERITED=inherited\nMR_CONFIG=config\nMR_BOTH=config wins\n"


async def test_the_command_runs_in_its_workdir(http: HttpClient, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    provider = cli(http, [make_cli(tmp_path, "pwd", PRINT_CWD)], workdir=str(work))
    assert (await provider.complete(ask("q"))).text == str(work)


async def test_a_missing_command_fails_the_call_with_command_not_found(
    http: HttpClient, tmp_path: Path
) -> None:
    provider = cli(http, [tmp_path / "nope"])
    _, error = await failure(provider, ask("q"), streaming=False)
    assert isinstance(error, ProviderError)
    assert error.message == f"command not found: {tmp_path / 'nope'}"
    assert error.provider == "local"


async def test_ping_finds_the_executable_by_path_on_the_config_path_and_from_workdir(
    http: HttpClient, tmp_path: Path
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = make_cli(bin_dir, "mr-fake-tool", CAT)
    await cli(http, [tool]).ping()
    await cli(http, "mr-fake-tool --print", env={"PATH": str(bin_dir)}).ping()
    await cli(http, "bin/mr-fake-tool", workdir=str(tmp_path)).ping()
    # The config's PATH is also the one the run uses.
    assert (await cli(http, "mr-fake-tool", env={"PATH": str(bin_dir)}).complete(ask("ok"))).text


@pytest.mark.parametrize("case", ["missing", "not executable", "no workdir"])
async def test_ping_reports_an_unusable_command_as_not_retriable(
    http: HttpClient, tmp_path: Path, case: str
) -> None:
    tool = make_cli(tmp_path, "tool", CAT)
    if case == "missing":
        provider, expected = cli(http, "mr-no-such-tool"), "command not found: mr-no-such-tool"
    elif case == "not executable":
        tool.chmod(0o644)
        provider, expected = cli(http, [tool]), f"command not found: {tool}"
    else:
        gone = tmp_path / "gone"
        provider = cli(http, [tool], workdir=str(gone))
        expected = f"working directory not found: {gone}"
    with pytest.raises(ProviderError) as caught:
        await provider.ping()
    assert caught.value.message == expected
    assert caught.value.retriable is False
    assert caught.value.provider == "local"
