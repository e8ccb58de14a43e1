"""``python -m mcp_server.cli`` — the same as the ``modelreins`` console script."""

from __future__ import annotations

import sys

from mcp_server.cli import main

sys.exit(main())
