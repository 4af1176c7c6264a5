"""What the package's metadata claims is what CI runs and what the provider checks. Pure: no Airflow DB."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import pytest

from airflow_provider_bankapi.airflow_version import MINIMUM_AIRFLOW

REPOSITORY = Path(__file__).resolve().parents[1]
METADATA = importlib.metadata.metadata("airflow-provider-bankapi")
CLASSIFIERS = METADATA.get_all("Classifier") or []


def release(text: str) -> tuple[int, int]:
    major, minor = text.split(".")
    return int(major), int(minor)


def classified_pythons() -> list[tuple[int, int]]:
    found = (re.fullmatch(r"Programming Language :: Python :: (3\.\d+)", c) for c in CLASSIFIERS)
    return sorted(release(match.group(1)) for match in found if match)


def pinned_pythons() -> list[tuple[int, int]]:
    names = (REPOSITORY / "constraints").glob("constraints-*.txt")
    return sorted(release(path.stem.removeprefix("constraints-")) for path in names)


def test_every_classified_python_has_its_pins_and_no_other():
    assert classified_pythons() == pinned_pythons() == [(3, 10), (3, 11), (3, 12), (3, 13)]


def test_requires_python_starts_at_the_oldest_classified_python():
    assert METADATA["Requires-Python"] == ">=3.10"
    assert classified_pythons()[0] == (3, 10)


def test_ci_runs_the_fast_lane_on_the_oldest_and_the_newest_python():
    script = (REPOSITORY / ".ci" / "run").read_text()
    (releases,) = re.findall(r"^for release in ([\d. ]+); do$", script, flags=re.MULTILINE)
    oldest, newest = classified_pythons()[0], classified_pythons()[-1]
    assert [release(text) for text in releases.split()] == [oldest, newest]
    assert 'make test-fast PYTHON="$(python_release "$release")" VENV=".venv-$release"' in script
    assert re.search(r"^make dist$", script, flags=re.MULTILINE)


@pytest.mark.parametrize(
    "path", [pytest.param(path, id=path.name) for path in sorted(REPOSITORY.glob("constraints/*"))]
)
def test_every_pin_file_pins_the_airflow_the_suite_runs(path):
    pins = dict(line.split("==", 1) for line in path.read_text().splitlines() if "==" in line)
    assert pins["apache-airflow"] == "3.3.2"
    assert "airflow-provider-bankapi" not in pins


def test_the_airflow_floor_is_the_one_the_provider_checks():
    requirements = METADATA.get_all("Requires-Dist") or []
    (airflow,) = [r for r in requirements if r.startswith("apache-airflow>=")]
    assert release(airflow.removeprefix("apache-airflow>=")) == MINIMUM_AIRFLOW


def test_classifiers_and_license():
    assert {"Framework :: Apache Airflow", "Framework :: Apache Airflow :: Provider"} <= set(CLASSIFIERS)
    # PEP 639: the license is an SPDX expression and its file; "License ::" classifiers are deprecated.
    assert METADATA["License-Expression"] == "Apache-2.0"
    assert not [classifier for classifier in CLASSIFIERS if classifier.startswith("License ::")]
    assert (REPOSITORY / "LICENSE").read_text().lstrip().startswith("Apache License\n")


def test_project_urls_name_the_documentation_airflow_links_to():
    # Airflow's provider discovery takes the Providers page's link from the "Documentation" Project-URL.
    urls = dict(entry.split(", ", 1) for entry in METADATA.get_all("Project-URL") or [])
    assert set(urls) == {"Documentation", "Changelog", "Source"}
    assert all(url.startswith(urls["Source"]) for url in urls.values())
    assert urls["Changelog"].endswith("/CHANGELOG.md")
    assert (REPOSITORY / "CHANGELOG.md").read_text().startswith("# Changelog\n")
