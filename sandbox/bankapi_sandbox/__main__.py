"""``python -m airflow_provider_bankapi.sandbox``: see cli.py."""

from __future__ import annotations

import sys

from airflow_provider_bankapi.sandbox.cli import main

if __name__ == "__main__":
    sys.exit(main())
