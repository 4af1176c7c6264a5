"""What the provider's operators share: the connection, the hook, the output file and its asset event."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import AssetAlias, BaseOperator

from airflow_provider_bankapi.client.fields import check_range
from airflow_provider_bankapi.hooks.bankapi import BankingApiHook
from airflow_provider_bankapi.operators.outputs import (
    PRIVATE_FILE_MODE,
    asset_uri,
    check_file_mode,
    default_asset_alias,
    emit_asset_event,
)
from airflow_provider_bankapi.retry_policy import with_default_retry_policy

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context, ObjectStoragePath

    from airflow_provider_bankapi.operators.lineage import WrittenOutput


def _with_alias(outlets: Any, alias: str) -> list[Any]:
    current = list(outlets or [])
    if not any(isinstance(item, AssetAlias) and item.name == alias for item in current):
        current.append(AssetAlias(name=alias))
    return current


class BankingApiBaseOperator(BaseOperator):
    """What both operators share: the connection, the hook, the output file and its asset event.

    :param output_file_mode: the mode of an output written to a local disk (default 0o600: the owner
        alone reads it); the folders made for it get search permission where read is given (0o700 for
        0o600, 0o750 for 0o640). The process's umask can only take bits away. Object stores ignore it.
    """

    #: The file this run wrote, for its lineage (None until one is written).
    _written: WrittenOutput | None = None

    def __init__(
        self,
        *,
        bankapi_conn_id: str,
        output_path: str | None,
        asset_alias: str | None,
        output_file_mode: int = PRIVATE_FILE_MODE,
        max_response_bytes: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**with_default_retry_policy(kwargs))
        if max_response_bytes is not None:
            check_range("max_response_bytes", max_response_bytes)  # refused when the DAG is parsed
        self.bankapi_conn_id = bankapi_conn_id
        self.max_response_bytes = max_response_bytes
        self.output_path = output_path
        self.asset_alias = asset_alias
        self.output_file_mode = check_file_mode(output_file_mode)
        if output_path is not None and asset_alias != "":
            # The path is usually templated, so the asset is only known at run time: an alias says so.
            dag_id = self.dag_id if self.has_dag() else None  # type: ignore[no-untyped-call]
            self.asset_alias = asset_alias or default_asset_alias(dag_id, self.task_id)
            self.outlets = _with_alias(self.outlets, self.asset_alias)

    @cached_property
    def hook(self) -> BankingApiHook:
        """Made on first use at execute time, never while the DAG file is parsed."""
        return BankingApiHook(
            bankapi_conn_id=self.bankapi_conn_id, max_response_bytes=self.max_response_bytes
        )

    def lineage_endpoint(self) -> str:
        """The bank resource this task reads, as written in the DAG (a template, not one rendered path)."""
        raise NotImplementedError

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage[Any, Any]:
        """The bank resource as the input dataset, the written file (if any) as the output, with its row and
        byte counts; the OpenLineage provider calls it after a successful run.
        """
        from airflow_provider_bankapi.operators.lineage import operator_lineage

        return operator_lineage(
            base_url=self.hook.base_url, endpoint=self.lineage_endpoint(), output=self._written
        )

    def _announce(self, context: Context, path: ObjectStoragePath, extra: dict[str, Any]) -> None:
        """Announce a complete output file: to lineage, and as an asset event through the task's alias."""
        from airflow_provider_bankapi.operators.lineage import written_output

        self._written = written_output(path, asset_uri(path), extra.get("records"))
        if self.asset_alias:
            uri = emit_asset_event(context, self.asset_alias, path, extra)
            self.log.info("Asset event for %s (alias %s).", uri, self.asset_alias)
