"""``python -m mcp_server`` is the ``modelreins`` command."""

from __future__ import annotations

import sys

from mcp_server.cli import main

sys.exit(main())
