"""What the provider's operators share: the connection, the hook, the output file and its asset event."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import AssetAlias, BaseOperator

from airflow_provider_bankapi.hooks.bankapi import BankingApiHook
from airflow_provider_bankapi.operators.outputs import default_asset_alias, emit_asset_event
from airflow_provider_bankapi.retry_policy import with_default_retry_policy

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath


def _with_alias(outlets: Any, alias: str) -> list[Any]:
    current = list(outlets or [])
    if not any(isinstance(item, AssetAlias) and item.name == alias for item in current):
        current.append(AssetAlias(name=alias))
    return current


class BankingApiBaseOperator(BaseOperator):
    """What both operators share: the connection, the hook, the output file and its asset event."""

    def __init__(
        self,
        *,
        bankapi_conn_id: str,
        output_path: str | None,
        asset_alias: str | None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**with_default_retry_policy(kwargs))
        self.bankapi_conn_id = bankapi_conn_id
        self.output_path = output_path
        self.asset_alias = asset_alias
        if output_path is not None and asset_alias != "":
            # The path is usually templated, so the asset is only known at run time: an alias says so.
            dag_id = self.dag_id if self.has_dag() else None  # type: ignore[no-untyped-call]
            self.asset_alias = asset_alias or default_asset_alias(dag_id, self.task_id)
            self.outlets = _with_alias(self.outlets, self.asset_alias)

    @cached_property
    def hook(self) -> BankingApiHook:
        """Made on first use at execute time, never while the DAG file is parsed."""
        return BankingApiHook(bankapi_conn_id=self.bankapi_conn_id)

    def _announce(self, context: Context, path: ObjectStoragePath, extra: dict[str, Any]) -> None:
        if self.asset_alias:
            uri = emit_asset_event(context, self.asset_alias, path, extra)
            self.log.info("Asset event for %s (alias %s).", uri, self.asset_alias)
