"""The Airflow floor: 3.3, refused with a clear message on older releases. Pure: no Airflow DB."""

from __future__ import annotations

import importlib
import sys

import pytest

from airflow_provider_bankapi.airflow_version import airflow_release, require_supported_airflow
from airflow_provider_bankapi.errors import ConfigurationError, UnsupportedAirflowError


@pytest.mark.parametrize(
    ("version", "release"),
    [
        pytest.param("3.3.2", (3, 3), id="release"),
        pytest.param("3.3.0rc1", (3, 3), id="release-candidate"),
        pytest.param("3.4.0.dev0", (3, 4), id="development"),
        pytest.param("10.0.1", (10, 0), id="two-digit-major"),
    ],
)
def test_airflow_release(version, release):
    assert airflow_release(version) == release


@pytest.mark.parametrize("version", [pytest.param(v, id=v) for v in ("3.3.0", "3.3.2", "3.4.0", "4.0.0")])
def test_airflow_3_3_and_newer_are_accepted(version):
    require_supported_airflow(version)


@pytest.mark.parametrize(
    "version",
    [
        pytest.param("3.2.2", id="3.2.2"),
        pytest.param("3.2.0", id="3.2.0"),
        pytest.param("2.11.0", id="2.11.0"),
        pytest.param("unknown", id="unreadable"),
    ],
)
def test_older_airflow_is_refused_with_what_to_do(version):
    with pytest.raises(UnsupportedAirflowError) as caught:
        require_supported_airflow(version)
    assert isinstance(caught.value, ConfigurationError)
    assert caught.value.found == version
    assert f"needs Apache Airflow 3.3 or newer; this environment has {version}" in caught.value.message
    assert 'pip install "apache-airflow>=3.3"' in caught.value.hint


@pytest.mark.parametrize(
    "module",
    [
        pytest.param("airflow_provider_bankapi.hooks.bankapi", id="hook"),
        pytest.param("airflow_provider_bankapi.triggers.bankapi", id="trigger"),
        pytest.param("airflow_provider_bankapi.operators.bankapi", id="operators"),
        pytest.param("airflow_provider_bankapi.sensors.bankapi", id="sensors"),
    ],
)
def test_importing_the_provider_on_airflow_3_2_names_the_version(monkeypatch, module):
    import airflow

    monkeypatch.setattr(airflow, "__version__", "3.2.2")
    for name in [name for name in sys.modules if name.startswith("airflow_provider_bankapi.")]:
        if name.split(".")[1] in {"hooks", "operators", "sensors", "triggers"}:
            monkeypatch.delitem(sys.modules, name)
    with pytest.raises(UnsupportedAirflowError, match="this environment has 3.2.2"):
        importlib.import_module(module)
