"""Daily check of the client certificate: warn before it expires, fail once it has (the rotation reminder).

What it shows
    ``BankingApiHook.describe_certificate()`` reading the connection's client certificate (PEM pair or
    PKCS#12) without calling the bank: subject, expiry, days left, SHA-256 fingerprint. The task

    - succeeds quietly while the certificate has more than ``warn_days`` days left;
    - succeeds with a WARNING in its log, and ``"status": "expiring"`` in its XCom, within
      ``warn_days`` days of the expiry;
    - fails once the certificate has expired (or cannot be used at all), with the rotation steps in
      the error: every DAG that uses the connection fails from then on, and this is the failure that
      says why and what to do.

    Rotation without downtime: the bank allows two active certificates per credential, so the new one
    can be bound before the old one is removed.

How to adapt it
    - Connection ``bankapi_default`` (type "Banking API"): see ``bankapi_hourly_balances``; check
      each connection you use (one task per connection id).
    - ``warn_days`` Param (default 30): how early the reminder starts.
    - Make the warning reach someone: give the DAG an ``on_failure_callback`` notifier and add one to
      a task downstream of the check for the ``expiring`` case (Slack, e-mail...): nobody reads the
      logs of a task that succeeds.
"""

from __future__ import annotations

import datetime
import logging

from airflow.sdk import DAG, Param, task

CONN_ID = "bankapi_default"

ROTATION_STEPS = (
    "To rotate the client certificate without downtime (the bank allows two active certificates per "
    "credential): 1. issue a new certificate and bind it to the credential in the bank's back office "
    "(CORE); 2. switch the Airflow connection {conn_id!r} to it (client_cert + client_private_key, or "
    "client_pfx_secret + client_pfx_password) and check it with `airflow connections test {conn_id}`; "
    "3. unbind the old certificate in CORE."
)

log = logging.getLogger(__name__)

with DAG(
    dag_id="bankapi_certificate_check",
    description="Daily: warn before the client certificate expires, fail once it has.",
    doc_md=__doc__,
    schedule="@daily",
    start_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
    catchup=False,
    params={
        "warn_days": Param(
            30, type="integer", minimum=1, description="Warn this many days before the certificate expires."
        ),
    },
    tags=["bankapi", "example"],
):

    @task
    def check_client_certificate(params=None) -> dict:
        """Describe the client certificate; warn within warn_days of its expiry; fail once expired."""
        from airflow.sdk.exceptions import AirflowFailException

        from airflow_provider_bankapi.errors import ClientIdentityError
        from airflow_provider_bankapi.hooks.bankapi import BankingApiHook

        steps = ROTATION_STEPS.format(conn_id=CONN_ID)
        try:
            certificate = BankingApiHook(bankapi_conn_id=CONN_ID).describe_certificate()
        except ClientIdentityError as exc:
            # An expired certificate ends here: the provider refuses to load it, as the bank's TLS
            # handshake would. No retry can fix it, hence AirflowFailException.
            raise AirflowFailException(
                f"The client certificate of connection {CONN_ID!r} can no longer be used: {exc.message}\n"
                f"{steps}"
            ) from exc
        result = {
            "subject": certificate.subject,
            "fingerprint_sha256": certificate.fingerprint_sha256,
            "not_valid_after": certificate.not_valid_after.isoformat(),
            "days_left": certificate.days_left,
            "status": "ok",
        }
        remaining = certificate.not_valid_after - datetime.datetime.now(datetime.timezone.utc)
        if remaining <= datetime.timedelta(days=params["warn_days"]):
            result["status"] = "expiring"
            log.warning(
                "The client certificate of connection %r (%s, SHA-256 %s) expires in %d days, on %s. %s",
                CONN_ID,
                certificate.subject,
                certificate.fingerprint_sha256,
                certificate.days_left,
                certificate.not_valid_after.strftime("%Y-%m-%d %H:%M UTC"),
                steps,
            )
        else:
            log.info(
                "The client certificate of connection %r (%s) is valid for %d more days (until %s).",
                CONN_ID,
                certificate.subject,
                certificate.days_left,
                certificate.not_valid_after.strftime("%Y-%m-%d"),
            )
        return result

    check_client_certificate()
