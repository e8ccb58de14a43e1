from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from core.bootstrap import Detected, detect, ensure_home, render_config
from core.config import load_settings, masked, parse_settings
from core.errors import ValidationFailed


def problems(data: object, env: dict[str, str] | None = None) -> list[dict[str, str]]:
    with pytest.raises(ValidationFailed) as info:
        parse_settings(data, env=env or {})
    assert isinstance(info.value.details, list)
    return info.value.details


def test_full_design_example_is_valid() -> None:
    text = """
    server: {host: 127.0.0.1, port: 8484, auth: token}
    providers:
      claude:
        type: anthropic
        default: true
        apiKey: ${ANTHROPIC_API_KEY}
        model: claude-sonnet-4-6
        maxTokens: 8192
        systemPrompt: "be brief"
        timeout: 120000
      lmstudio: {type: openai-compat, baseUrl: "http://127.0.0.1:1234/v1", apiKey: lm-studio,
                 model: x, stream: true}
      ollama: {type: ollama, baseUrl: "http://127.0.0.1:11434", model: llama3.2,
               options: {num_ctx: 32768}}
      1minai: {type: openai-compat, baseUrl: "https://api.1min.ai/v1",
               apiKey: "${ONEMINAI_API_KEY}", authHeader: API-KEY, model: gpt-4o, fallback: true}
      local-claude-code:
        type: cli
        command: claude --print --dangerously-skip-permissions
        timeout: 120000
        env: {ANTHROPIC_API_KEY: "${ANTHROPIC_API_KEY}"}
        workdir: /srv/jobs
    """
    env = {"ANTHROPIC_API_KEY": "sk-ant-secret-value-1234", "ONEMINAI_API_KEY": "one-min-key-99"}
    settings = parse_settings(yaml.safe_load(text), env=env)
    assert settings.default_provider == "claude"
    assert settings.fallback_providers == ["1minai"]
    claude = settings.providers["claude"]
    assert claude.max_tokens == 8192
    assert claude.timeout_s == 120.0
    assert claude.api_key == "sk-ant-secret-value-1234"
    assert settings.providers["local-claude-code"].env == {
        "ANTHROPIC_API_KEY": "sk-ant-secret-value-1234"
    }


def test_unset_variable_names_variable_and_provider() -> None:
    found = problems({"providers": {"claude": {"type": "anthropic", "apiKey": "${NOPE_KEY}"}}})
    assert found == [{
        "path": "providers.claude.apiKey",
        "problem": "environment variable NOPE_KEY is not set (provider 'claude')",
    }]


def test_variable_default_and_dollar_escape() -> None:
    settings = parse_settings(
        {"providers": {"e": {"type": "echo", "systemPrompt": "${UNSET:-plain} costs $$5"}}},
        env={},
    )
    assert settings.providers["e"].system_prompt == "plain costs $5"


def test_unknown_type_suggests_closest() -> None:
    [found] = problems({"providers": {"c": {"type": "antropic"}}})
    assert found["path"] == "providers.c.type"
    assert "unknown provider type 'antropic'; did you mean 'anthropic'?" in found["problem"]


def test_unknown_key_suggests_closest_with_exact_path() -> None:
    [found] = problems({"providers": {"o": {"type": "ollama", "modle": "x"}}})
    assert found == {"path": "providers.o.modle",
                     "problem": "unknown key 'modle'; did you mean 'model'?"}
    [top] = problems({"servr": {}})
    assert top == {"path": "servr", "problem": "unknown key 'servr'; did you mean 'server'?"}


def test_key_of_another_provider_type_is_unknown_here() -> None:
    found = problems({"providers": {"a": {"type": "anthropic", "apiKey": "k",
                                          "authHeader": "API-KEY"}}})
    assert found == [{"path": "providers.a.authHeader", "problem": "unknown key 'authHeader'"}]


def test_two_defaults_is_an_error() -> None:
    found = problems({"providers": {"a": {"type": "echo", "default": True},
                                    "b": {"type": "echo", "default": True}}})
    assert found == [{"path": "providers",
                      "problem": "more than one default provider: a, b (keep one)"}]


def test_wrong_value_type_names_path() -> None:
    [found] = problems({"providers": {"c": {"type": "echo", "timeout": "soon"}}})
    assert found["path"] == "providers.c.timeout"


def test_all_problems_reported_at_once() -> None:
    found = problems({"providers": {"a": {"type": "nope"}, "b": {"type": "echo", "x": 1}}})
    assert [p["path"] for p in found] == ["providers.a.type", "providers.b.x"]


def test_auth_none_only_on_loopback() -> None:
    parse_settings({"server": {"auth": "none", "host": "127.0.0.1"}}, env={})
    [found] = problems({"server": {"auth": "none", "host": "0.0.0.0"}})
    assert found["path"] == "server.auth"


def test_invalid_yaml_reports_line(home: Path) -> None:
    (home / "config.yaml").write_text("providers:\n  a: {type: echo\n")
    with pytest.raises(ValidationFailed, match="not valid YAML at line"):
        load_settings(home)


def test_show_masks_secrets() -> None:
    settings = parse_settings(
        {"providers": {
            "c": {"type": "anthropic", "apiKey": "sk-ant-abcdefghijklmnop"},
            "x": {"type": "cli", "command": "tool", "env": {"TOOL_TOKEN": "tok-zzzzzzzzzzzz"}},
        }},
        env={},
    )
    shown = masked(settings)
    dumped = yaml.safe_dump(shown)
    assert "sk-ant-abcdefghijklmnop" not in dumped
    assert "tok-zzzzzzzzzzzz" not in dumped
    assert shown["providers"]["c"]["apiKey"] == "****mnop"


def test_generated_config_detects_and_defaults() -> None:
    found = detect(
        env={"ANTHROPIC_API_KEY": "k", "ONEMINAI_API_KEY": "k"},
        which=lambda name: "/usr/bin/claude" if name == "claude" else None,
        probe=lambda url: {"models": [{"name": "llama3.2"}]} if "11434" in url else None,
    )
    assert [d.name for d in found] == ["claude", "1minai", "local-claude-code", "ollama"]
    settings = parse_settings(yaml.safe_load(render_config(found)),
                              env={"ANTHROPIC_API_KEY": "k", "ONEMINAI_API_KEY": "k"})
    assert settings.default_provider == "claude"
    assert settings.providers["ollama"].model == "llama3.2"
    assert settings.providers["echo"].default is False
    assert "apiKey: '${ANTHROPIC_API_KEY}'" in render_config(found)


def test_generated_config_with_nothing_defaults_to_echo(home: Path) -> None:
    assert ensure_home(home / "fresh", generate=lambda: render_config([]))
    settings = load_settings(home / "fresh")
    assert list(settings.providers) == ["echo"]
    assert settings.default_provider == "echo"
    assert (home / "fresh" / "config.yaml").stat().st_mode & 0o777 == 0o600
    assert not ensure_home(home / "fresh", generate=lambda: "unused")


def test_lm_studio_detection() -> None:
    found = detect(env={}, which=lambda _: None,
                   probe=lambda url: {"data": [{"id": "qwen"}]} if "1234" in url else None)
    assert found == [Detected("lmstudio", {"type": "openai-compat",
                                           "baseUrl": "http://127.0.0.1:1234/v1",
                                           "apiKey": "lm-studio", "model": "qwen"},
                              "LM Studio answers on 127.0.0.1:1234")]
