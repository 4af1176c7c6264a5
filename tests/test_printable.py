"""One helper neutralises text from outside (account ids, bank bodies) for messages and log lines."""

from __future__ import annotations

import pytest

from airflow_provider_bankapi.errors import printable


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        pytest.param("123", "123", id="plain-kept"),
        pytest.param("conta é 1 ~ \\", "conta é 1 ~ \\", id="printable-unicode-and-backslash-kept"),
        pytest.param(
            "123\nINFO - Marking task as SUCCESS", "123\\nINFO - Marking task as SUCCESS", id="newline"
        ),
        pytest.param("a\r\tb", "a\\r\\tb", id="carriage-return-and-tab"),
        pytest.param("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m", id="ansi-escape"),
        pytest.param("nul\x00del\x7f", "nul\\x00del\\x7f", id="nul-and-del"),
        pytest.param("c1\x85\x9b", "c1\\x85\\x9b", id="c1-controls"),
        pytest.param("ls\u2028ps\u2029", "ls\\u2028ps\\u2029", id="unicode-line-separators"),
        pytest.param("abc\u202edef", "abc\\u202edef", id="bidi-override"),
    ],
)
def test_control_and_format_characters_are_escaped(text, shown):
    assert printable(text) == shown
    assert printable(text).isprintable()
    assert len(printable(text).splitlines()) == 1  # whatever splits a log line, the text is one line
