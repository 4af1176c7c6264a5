"""What the operators write is private and stays where its path says: modes, owners, dot segments, ids."""

from __future__ import annotations

import os
import stat

import pytest

from airflow_provider_bankapi.errors import ConfigurationError
from airflow_provider_bankapi.operators.bankapi import BankingApiBalanceOperator, BankingApiOperator
from airflow_provider_bankapi.operators.outputs import (
    balance_row,
    folder_mode,
    output_location,
    write_bytes,
    write_csv,
    write_jsonl,
)


def mode_of(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def umask():
    """The usual umask (022) for the test, whatever the runner's: the modes checked are the provider's own."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


WRITERS = [
    pytest.param(lambda path, mode: write_jsonl(path, [{"n": 1}], **mode), id="jsonl"),
    pytest.param(lambda path, mode: write_csv(path, [{"n": 1}], **mode), id="csv"),
    pytest.param(lambda path, mode: write_bytes(path, b"n\n1\n", **mode), id="bytes"),
]


@pytest.mark.parametrize("write", WRITERS)
def test_files_are_0600_and_the_folders_made_for_them_0700_by_default(tmp_path, umask, write):
    os.chmod(tmp_path, 0o755)
    target = tmp_path / "by-account" / "20260101T000000" / "123.jsonl"

    write(output_location(target.as_uri()), {})

    assert mode_of(target) == 0o600
    assert mode_of(target.parent) == mode_of(target.parent.parent) == 0o700
    assert mode_of(tmp_path) == 0o755  # a folder that existed is left as its owner made it


def test_a_rerun_makes_an_old_world_readable_file_private(tmp_path, umask):
    target = tmp_path / "balances.jsonl"
    target.write_text("old\n")
    os.chmod(target, 0o644)

    write_jsonl(output_location(target.as_uri()), [{"n": 1}])

    assert mode_of(target) == 0o600
    assert target.read_text() == '{"n":1}\n'


def test_a_group_readable_mode_can_be_asked_for(tmp_path, umask):
    target = tmp_path / "shared" / "balances.jsonl"

    write_jsonl(output_location(target.as_uri()), [{"n": 1}], mode=0o640)

    assert (mode_of(target), mode_of(target.parent)) == (0o640, 0o750)


@pytest.mark.parametrize(
    ("file_mode", "expected"),
    [
        pytest.param(0o600, 0o700, id="private"),
        pytest.param(0o640, 0o750, id="group-reads"),
        pytest.param(0o644, 0o755, id="everyone-reads"),
        pytest.param(0o660, 0o770, id="group-writes"),
    ],
)
def test_folders_get_search_permission_wherever_files_are_readable(file_mode, expected):
    assert folder_mode(file_mode) == expected


@pytest.mark.parametrize(
    "file_mode",
    [
        pytest.param(0o400, id="owner-cannot-write"),
        pytest.param(0o1600, id="sticky-bit"),
        pytest.param("600", id="text"),
        pytest.param(True, id="a-bool"),
    ],
)
def test_an_output_file_mode_the_writer_cannot_use_is_refused_when_the_dag_is_parsed(file_mode):
    with pytest.raises(ValueError, match="output_file_mode"):
        BankingApiBalanceOperator(task_id="b", account_id="1", output_file_mode=file_mode)


@pytest.fixture
def foreign(monkeypatch):
    """Make a folder belong to another user: chown to nobody as root; else this process claims another uid."""

    def make(path):
        if os.geteuid() == 0:
            os.chown(path, 65534, 65534)
            return 65534
        owner = os.geteuid()
        monkeypatch.setattr(os, "geteuid", lambda: owner + 1)
        return owner

    return make


@pytest.mark.parametrize(
    "where",
    [
        pytest.param("", id="the-output-folder"),
        pytest.param("/daily/x", id="a-folder-above-it"),
    ],
)
def test_a_folder_owned_by_another_user_is_refused_naming_it_and_its_owner(tmp_path, foreign, where):
    shared = tmp_path / "bankapi"
    shared.mkdir()
    owner = foreign(shared)
    target = f"{shared}{where}/balances.jsonl"

    with pytest.raises(ConfigurationError) as refused:
        write_jsonl(output_location(f"file://{target}"), [{"n": 1}])

    assert refused.value.field == "output_path"
    assert f"The output folder {shared} is owned by uid {owner}" in refused.value.message
    assert not list(shared.rglob("*.jsonl*"))  # nothing written there, not even a temporary file


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("file:///{base}/by-account/123/../../../outside.jsonl", id="dot-dot"),
        pytest.param("file:///{base}/./x.jsonl", id="dot"),
        pytest.param("/{base}/by-account/../x.jsonl", id="absolute-path-dot-dot"),
        pytest.param("file:///{base}/%2e%2e/x.jsonl", id="encoded-dot-dot"),
        pytest.param("memory://bucket/{base}/../x.jsonl", id="object-store-dot-dot"),
        pytest.param("file:///{base}/12\n3.jsonl", id="newline"),
    ],
)
def test_an_output_path_that_resolves_elsewhere_than_it_reads_is_refused_naming_it(tmp_path, url):
    with pytest.raises(ConfigurationError) as refused:
        output_location(url.format(base=str(tmp_path).strip("/")))

    assert refused.value.field == "output_path"
    assert refused.value.message.isprintable()
    assert "output_path '" in refused.value.message


def test_a_backslash_is_part_of_a_file_name_and_stays_in_its_folder(tmp_path):
    target = output_location(f"{tmp_path.as_uri()}/by-account/123\\..\\..\\x.jsonl")

    write_jsonl(target, [{"n": 1}])

    assert [p.name for p in (tmp_path / "by-account").iterdir()] == ["123\\..\\..\\x.jsonl"]


# -- ids in operators and rows ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        pytest.param({"account_ids": ["123", "123/../456"]}, "account_ids", id="in-a-list"),
        pytest.param({"account_ids": "123, ..%2F456"}, "account_ids", id="in-a-text"),
        pytest.param({"account_id": "%2e%2e"}, "account_id", id="mapped-one"),
        pytest.param({"account_id": "1\x1b[2J"}, "account_id", id="escape-sequence"),
        pytest.param({"account_id": "1\nFORGED - Marking task as SUCCESS"}, "account_id", id="one-id-whole"),
    ],
)
def test_the_balance_operator_refuses_a_crafted_id_before_any_call(kwargs, field):
    operator = BankingApiBalanceOperator(task_id="b", **kwargs)

    with pytest.raises(ConfigurationError, match="The account id") as refused:
        operator.accounts()
    assert refused.value.field == field
    assert refused.value.message.isprintable()


@pytest.mark.parametrize(
    ("balance", "row"),
    [
        pytest.param(
            {"account_id": "123", "available": "1.00"},
            {"account_id": "123", "available": "1.00"},
            id="same-account",
        ),
        pytest.param(
            {"account_id": 123, "available": "1.00"},
            {"account_id": "123", "available": "1.00"},
            id="same-account-as-a-number",
        ),
        pytest.param(
            {"account_id": "456", "available": "9.00"},
            {"account_id": "123", "bank_account_id": "456", "available": "9.00"},
            id="another-account-shows",
        ),
        pytest.param({"available": "1.00"}, {"account_id": "123", "available": "1.00"}, id="no-id-in-answer"),
        pytest.param("1.00", {"account_id": "123", "balance": "1.00"}, id="not-an-object"),
    ],
)
def test_a_row_keeps_the_bank_s_own_account_id_beside_the_one_asked_for(balance, row):
    assert list(balance_row("123", balance).items()) == list(row.items())  # in this order


def test_operators_take_the_output_file_mode():
    operator = BankingApiOperator(task_id="o", endpoint="/accounts", output_file_mode=0o640)
    assert operator.output_file_mode == 0o640
    assert BankingApiBalanceOperator(task_id="b", account_id="1").output_file_mode == 0o600
