"""``python -m benchmarks --write FILE NAME``: the sections measured again replace theirs, the others stay."""

from __future__ import annotations

from benchmarks.__main__ import available, section, sections_of, write


def _section(name: str, figures: str) -> str:
    title, about = section(name)
    return f"## {title}\n\n{about.strip()}\n\n{figures}\n"


def test_writing_one_section_keeps_the_others_in_the_benchmarks_order(tmp_path):
    first, second, last = available()[0], available()[1], available()[-1]
    report = tmp_path / "BENCHMARKS.md"
    kept_first = _section(first, "| a kept table |\n\nA reading written by hand under it.")
    report.write_text(
        "# Benchmarks\n\nAn old header: This run: 2026-01-01.\n\n"
        + _section(last, "| the old figures |")
        + "\n"
        + kept_first
        + "\n## A benchmark that was renamed\n\nIts old figures.\n"
    )

    write(report, [_section(last, "| the new figures |"), _section(second, "| first figures |")])

    text = report.read_text()
    sections = sections_of(text)
    assert list(sections) == [section(name)[0] for name in (first, second, last)]
    assert sections[section(first)[0]] == kept_first
    assert "| the new figures |" in sections[section(last)[0]]
    assert "the old figures" not in text
    assert "renamed" not in text
    assert "This run: 2026-01-01" not in text
    assert text.startswith("# Benchmarks\n")
    assert [path.name for path in tmp_path.iterdir()] == ["BENCHMARKS.md"]  # no temporary file left


def test_a_new_file_holds_the_sections_run(tmp_path):
    report = tmp_path / "BENCHMARKS.md"
    name = available()[0]

    write(report, [_section(name, "| figures |")])

    assert list(sections_of(report.read_text())) == [section(name)[0]]
