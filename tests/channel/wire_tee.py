"""A stdio tee for MCP servers: ``python wire_tee.py LOG COMMAND [ARGS…]``.

Runs the command with its stdin and stdout relayed line by line, appending each line to
LOG as JSON ``{"dir": "c2s"|"s2c", "line": …}`` (client to server, server to client), so
a test can read exactly what a real client sent and received.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from typing import IO


def main() -> int:
    log_path, command = sys.argv[1], sys.argv[2:]
    log = open(log_path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
    lock = threading.Lock()
    child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdin is not None and child.stdout is not None

    def record(direction: str, line: bytes) -> None:
        with lock:
            log.write(json.dumps({"dir": direction, "line": line.decode(errors="replace")})
                      + "\n")

    def upstream(target: IO[bytes]) -> None:
        for line in sys.stdin.buffer:
            record("c2s", line)
            target.write(line)
            target.flush()
        target.close()

    threading.Thread(target=upstream, args=(child.stdin,), daemon=True).start()
    for line in child.stdout:
        record("s2c", line)
        sys.stdout.buffer.write(line)
        sys.stdout.buffer.flush()
    return child.wait()


if __name__ == "__main__":
    sys.exit(main())
