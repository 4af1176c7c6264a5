"""Shared test configuration."""

from __future__ import annotations

import importlib

import pytest

SANDBOX_PLUGIN = "airflow_provider_bankapi.sandbox.pytest_plugin"


def pytest_configure(config: pytest.Config) -> None:
    # The bankapi_sandbox fixture comes from the provider's pytest11 entry point once the project
    # is installed; register it here only when it is not (not installed, or plugin autoload
    # disabled), since registering the same module twice is an error in pytest.
    plugin = importlib.import_module(SANDBOX_PLUGIN)
    if not config.pluginmanager.is_registered(plugin):
        config.pluginmanager.register(plugin, SANDBOX_PLUGIN)
