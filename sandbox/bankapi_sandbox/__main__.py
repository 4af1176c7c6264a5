"""``python -m bankapi_sandbox``: see cli.py."""

from __future__ import annotations

import sys

from bankapi_sandbox.cli import main

if __name__ == "__main__":
    sys.exit(main())
