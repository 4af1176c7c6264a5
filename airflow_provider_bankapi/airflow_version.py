"""The Airflow release this provider needs: 3.3 or newer, checked when the hook or the trigger is imported.

Airflow 3.2 cannot run a task with today's releases of its own dependencies, and the provider relies on
what 3.3 brought (retry policies, the connection test on the workers). A DAG that imports the provider
on an older Airflow gets this error at once, instead of a failure deep inside the first task. The check
reads ``airflow.__version__`` (the hook imports Airflow anyway): DAG parsing imports these modules often.
"""

from __future__ import annotations

import re

from airflow_provider_bankapi.errors import UnsupportedAirflowError

MINIMUM_AIRFLOW = (3, 3)
_RELEASE = re.compile(r"(\d+)\.(\d+)")


def airflow_release(version: str) -> tuple[int, int]:
    """``(major, minor)`` of an Airflow version string (``"3.3.2"``, ``"3.4.0.dev0"``, ``"3.3.0rc1"``).

    :raises UnsupportedAirflowError: when the string names no release.
    """
    match = _RELEASE.match(version)
    if match is None:
        raise UnsupportedAirflowError(found=version)
    return int(match.group(1)), int(match.group(2))


def require_supported_airflow(version: str | None = None) -> None:
    """Raise :class:`UnsupportedAirflowError` unless Airflow is 3.3 or newer.

    :param version: the Airflow version to check; the installed ``airflow.__version__`` when None.
    """
    if version is None:
        import airflow

        version = str(airflow.__version__)
    if airflow_release(version) < MINIMUM_AIRFLOW:
        raise UnsupportedAirflowError(found=version)
