"""The real Claude Code client connects to ModelReins over stdio, SSE and Streamable HTTP.

Claude Code is installed with npm into ``tests/.npm`` (gitignored) once per session and runs
with a private ``HOME`` and the auto-updater off. ``claude mcp list`` health-checks every
configured server; each must report Connected against a live ``modelreins serve``, and an SSE
entry without the bearer header must not.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import anyio
import pytest

from tests.mcp.test_serve import serve_process
from tests.mcp.test_stdio import CONFIG, MODELREINS

pytestmark = pytest.mark.slow

NPM_PREFIX = Path(__file__).resolve().parent.parent / ".npm"
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


async def claude(binary: Path, home: Path, *args: str) -> str:
    result = await anyio.run_process([str(binary), *args], env=claude_env(home), cwd=home,
                                     check=False)
    output = (result.stdout + result.stderr).decode(errors="replace")
    assert result.returncode == 0, output
    return output


async def test_claude_code_connects_over_every_transport(claude_bin: Path,
                                                        tmp_path: Path) -> None:
    mr_home, cc_home = tmp_path / "mrhome", tmp_path / "cchome"
    mr_home.mkdir(mode=0o700)
    cc_home.mkdir()
    (mr_home / "config.yaml").write_text(CONFIG, encoding="utf-8")
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
    states = {m["name"]: m["state"] for m in map(CONNECTED.match, listing.splitlines()) if m}
    assert states.keys() >= {"mr-stdio", "mr-sse", "mr-http", "mr-sse-no-token"}, listing
    for name in ("mr-stdio", "mr-sse", "mr-http"):
        assert states[name] == "Connected", listing
    assert states["mr-sse-no-token"] != "Connected", listing
    assert served.token not in listing
