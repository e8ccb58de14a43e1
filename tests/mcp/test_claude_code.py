"""The real Claude Code client connects to ModelReins over stdio, SSE and Streamable HTTP.

Claude Code is installed with npm into ``tests/.npm`` (gitignored) once per session and runs
with a private ``HOME`` and the auto-updater off. ``claude mcp list`` health-checks every
configured server; each must report Connected against a live ``modelreins serve``, and an SSE
entry without the bearer header must not.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import anyio
import pytest

from tests.mcp.processes import MODELREINS, make_home, serve_process

pytestmark = pytest.mark.slow

NPM_PREFIX = Path(__file__).resolve().parent.parent / ".npm"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "mcp.json"
PACKAGE = "@anthropic-ai/claude-code"
CONNECTED = re.compile(r"^(?P<name>[\w-]+): .* - (?P<mark>\S+) (?P<state>.+)$")


@pytest.fixture(scope="session")
def claude_bin() -> Path:
    """``claude`` from ``tests/.npm``, installed there on first use."""
    binary = NPM_PREFIX / "node_modules" / ".bin" / "claude"
    if not binary.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed: install Node.js 18+ with npm to run the "
                        "Claude Code end-to-end tests")
        subprocess.run([npm, "install", "--prefix", str(NPM_PREFIX), "--no-audit", "--no-fund",
                        "--loglevel", "error", PACKAGE], check=True, timeout=600)
    return binary


def claude_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ANTHROPIC_", "CLAUDE_", "MODELREINS_"))}
    return {**env, "HOME": str(home), "DISABLE_AUTOUPDATER": "1",
            "DISABLE_TELEMETRY": "1", "DISABLE_ERROR_REPORTING": "1"}


async def claude(binary: Path, home: Path, *args: str, **env: str) -> str:
    result = await anyio.run_process([str(binary), *args], env={**claude_env(home), **env},
                                     cwd=home, check=False)
    output = (result.stdout + result.stderr).decode(errors="replace")
    assert result.returncode == 0, output
    return output


def homes(tmp_path: Path) -> tuple[Path, Path]:
    cc_home = tmp_path / "cchome"
    cc_home.mkdir()
    return make_home(tmp_path / "mrhome"), cc_home


def states(listing: str) -> dict[str, str]:
    return {m["name"]: m["state"] for m in map(CONNECTED.match, listing.splitlines()) if m}


async def test_claude_code_connects_over_every_transport(claude_bin: Path,
                                                        tmp_path: Path) -> None:
    mr_home, cc_home = homes(tmp_path)
    async with serve_process(mr_home) as served:
        bearer = f"Authorization: Bearer {served.token}"
        await claude(claude_bin, cc_home, "mcp", "add", "-s", "user", "mr-stdio",
                     "-e", f"MODELREINS_HOME={mr_home}", "--", MODELREINS, "mcp")
        await claude(claude_bin, cc_home, "mcp", "add", "-s", "user", "--transport", "sse",
                     "mr-sse", f"{served.url}/mcp/sse", "--header", bearer)
        await claude(claude_bin, cc_home, "mcp", "add", "-s", "user", "--transport", "http",
                     "mr-http", f"{served.url}/mcp", "--header", bearer)
        await claude(claude_bin, cc_home, "mcp", "add", "-s", "user", "--transport", "sse",
                     "mr-sse-no-token", f"{served.url}/mcp/sse")
        with anyio.fail_after(120):
            listing = await claude(claude_bin, cc_home, "mcp", "list")
    found = states(listing)
    assert found.keys() >= {"mr-stdio", "mr-sse", "mr-http", "mr-sse-no-token"}, listing
    for name in ("mr-stdio", "mr-sse", "mr-http"):
        assert found[name] == "Connected", listing
    assert found["mr-sse-no-token"] != "Connected", listing
    assert served.token not in listing


async def test_the_example_mcp_json_entries_connect(claude_bin: Path, tmp_path: Path) -> None:
    mr_home, cc_home = homes(tmp_path)
    entries = json.loads(EXAMPLES.read_text(encoding="utf-8"))["mcpServers"]
    assert {e["type"] for e in entries.values()} == {"stdio", "sse", "http"}
    async with serve_process(mr_home) as served:
        assert served.token is not None
        for name, entry in entries.items():
            if entry["type"] == "stdio":
                entry = {**entry, "command": MODELREINS}
            else:
                entry = {**entry, "url": entry["url"].replace("http://127.0.0.1:8484",
                                                              served.url)}
            await claude(claude_bin, cc_home, "mcp", "add-json", "-s", "user", name,
                         json.dumps(entry))
        with anyio.fail_after(120):
            listing = await claude(claude_bin, cc_home, "mcp", "list",
                                   MODELREINS_TOKEN=served.token, MODELREINS_HOME=str(mr_home))
    found = states(listing)
    assert {found.get(name) for name in entries} == {"Connected"}, listing
