"""What the operators tell OpenLineage: the bank's resource they read, the file they wrote, and how much.

The input dataset is the bank's resource, named so that every run of a task reports the same one: the
namespace is the Base URL's ``scheme://host:port`` (the port always written, so ``https://bank`` and
``https://bank:443`` are one bank), the name is the Base URL's path followed by the endpoint as written in
the DAG, template and all (``/public/gw_banking/v1/accounts/{account_id}/balance``), never the rendered
path of one account or one day. The output dataset is the final file, named as Airflow's OpenLineage
names an asset of that URI (``file`` and the path for a local file, ``s3://bucket`` and the key...), with
its row and byte counts.

The OpenLineage provider is optional: its classes are imported only when it asks for the facets, after a
run, never while a DAG file is parsed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import ObjectStoragePath

_DEFAULT_PORTS = {"https": 443, "http": 80}


@dataclass(frozen=True)
class WrittenOutput:
    """A file a run wrote: its URI, how many records (None for a body written as it came) and bytes."""

    uri: str
    rows: int | None
    size: int | None


def bank_resource(base_url: str, endpoint: str) -> tuple[str, str]:
    """The ``(namespace, name)`` of the bank resource ``endpoint`` (as written in the DAG) names under
    ``base_url``.
    """
    parts = urlsplit(base_url)
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
    host = (parts.hostname or "").lower()
    namespace = f"{parts.scheme.lower()}://{host}:{port}" if port else f"{parts.scheme.lower()}://{host}"
    return namespace, f"{parts.path.rstrip('/')}/{str(endpoint).lstrip('/')}"


def written_output(path: ObjectStoragePath, uri: str, rows: int | None) -> WrittenOutput:
    """What lineage says of a file just written: its size asked of its store (None when it cannot tell)."""
    try:
        size: int | None = int(path.fs.size(path.path))
    except (OSError, NotImplementedError, TypeError, ValueError):
        size = None
    return WrittenOutput(uri=uri, rows=rows, size=size)


def operator_lineage(
    *, base_url: str, endpoint: str, output: WrittenOutput | None
) -> OperatorLineage[Any, Any]:
    """The OpenLineage facets of a completed run: the bank resource in, the written file (if any) out."""
    from airflow.providers.common.compat.openlineage.facet import (
        InputDataset,
        OutputDataset,
        OutputStatisticsOutputDatasetFacet,
    )
    from airflow.providers.openlineage.extractors import OperatorLineage

    namespace, name = bank_resource(base_url, endpoint)
    outputs: list[Any] = []
    if output is not None:
        out_namespace, out_name = _file_dataset(output.uri)
        statistics = OutputStatisticsOutputDatasetFacet(rowCount=output.rows, size=output.size)
        outputs.append(
            OutputDataset(
                namespace=out_namespace, name=out_name, outputFacets={"outputStatistics": statistics}
            )
        )
    return OperatorLineage(inputs=[InputDataset(namespace=namespace, name=name)], outputs=outputs)


def _file_dataset(uri: str) -> tuple[str, str]:
    """The ``(namespace, name)`` Airflow's OpenLineage gives the asset ``uri``; for a scheme it has no
    converter for, the OpenLineage naming convention of object stores (``scheme://bucket``, the key).
    """
    from airflow.providers.openlineage.utils.utils import translate_airflow_asset
    from airflow.sdk import Asset

    dataset = translate_airflow_asset(Asset(uri=uri), None)
    if dataset is not None:
        return str(dataset.namespace), str(dataset.name)
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/")
