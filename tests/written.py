"""What the operators wrote, read back: each JSON Lines record checked for its ``fetched_at`` (UTC, ISO 8601),
then returned without it, to compare with the bank's own figures.
"""

from __future__ import annotations

import datetime
import json
from typing import Any


def without_fetched_at(record: dict[str, Any]) -> dict[str, Any]:
    stamp = datetime.datetime.fromisoformat(record["fetched_at"])
    assert stamp.utcoffset() == datetime.timedelta(0), record["fetched_at"]
    return {key: value for key, value in record.items() if key != "fetched_at"}


def jsonl_records(text: str) -> list[dict[str, Any]]:
    """Every line's record, its ``fetched_at`` checked and removed."""
    return [without_fetched_at(json.loads(line)) for line in text.splitlines()]
