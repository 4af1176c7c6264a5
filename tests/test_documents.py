"""The bank's JSON read exactly and written back with its digits; records found by path (pure)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from airflow_provider_bankapi.documents import BankDecimal, dumps, loads, number_text, records_of
from airflow_provider_bankapi.triggers.polling import Condition


@pytest.mark.parametrize(
    ("text", "written"),
    [
        pytest.param("1000.0400", "1000.0400", id="trailing-zeros"),
        pytest.param("12345678901234567.89", "12345678901234567.89", id="more-digits-than-a-float"),
        pytest.param("-0.01", "-0.01", id="negative-cents"),
        pytest.param("0.0000001", "0.0000001", id="small-stays-plain"),
        pytest.param("1e309", "1E+309", id="beyond-float-range-not-infinity"),
        pytest.param("1.5E-3", "0.0015", id="negative-exponent-written-plain"),
        pytest.param("123456789012345678901234567890", "123456789012345678901234567890", id="big-int"),
    ],
)
def test_a_number_is_written_back_with_the_banks_digits(text, written):
    value = loads(f'{{"amount": {text}}}')["amount"]

    assert dumps(value) == written
    assert Decimal(dumps(value)) == Decimal(text)  # the same number, never a float's approximation


def test_fractions_are_bank_decimals_and_integers_stay_ints():
    document = loads(b'{"a": 1.10, "b": 7, "c": [2.5, "3.0"], "d": true, "e": null}')

    assert type(document["a"]) is BankDecimal
    assert type(document["b"]) is int
    assert document == {"a": Decimal("1.10"), "b": 7, "c": [Decimal("2.5"), "3.0"], "d": True, "e": None}


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(constant):
    with pytest.raises(ValueError, match="not a JSON number"):
        loads(f'{{"amount": {constant}}}')


def test_dumps_is_compact_json_that_json_reads_back():
    value = {"name": "Pagamento PIX — São Paulo", "n": [1, None, True, 2.5], "m": loads("1000.0400")}

    text = dumps(value)

    assert text == '{"name":"Pagamento PIX — São Paulo","n":[1,null,true,2.5],"m":1000.0400}'
    assert json.loads(text, parse_float=Decimal) == value


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(Decimal("NaN"), id="nan"),
        pytest.param(Decimal("Infinity"), id="infinity"),
        pytest.param(float("inf"), id="float-infinity"),
        pytest.param({1: "a"}, id="non-text-key"),
        pytest.param({"a": object()}, id="unknown-type"),
    ],
)
def test_what_json_cannot_hold_is_refused(value):
    with pytest.raises((ValueError, TypeError)):
        dumps(value)


def test_a_bank_decimal_round_trips_through_its_own_serde_methods():
    number = loads("12345678901234567.89")

    assert BankDecimal.deserialize(number.serialize(), 1) == number
    assert number_text(BankDecimal.deserialize(number.serialize(), 1)) == "12345678901234567.89"
    with pytest.raises(TypeError):
        BankDecimal.deserialize("1", 2)


def test_a_sensor_comparison_sees_the_exact_number():
    # As a float, 999.9999999999999999 is 1000.0 and would meet the threshold.
    balance = loads('{"available": 999.9999999999999999}')
    condition = Condition(field="available", comparison=">=", value="1000.00")

    assert not condition.evaluate(balance).met
    assert condition.evaluate(loads('{"available": 1000.0000}')).met


@pytest.mark.parametrize(
    ("page", "path", "records"),
    [
        pytest.param({"items": [1, 2], "next_cursor": "c"}, None, [1, 2], id="items"),
        pytest.param({"data": [1, 2], "links": {}}, None, [1, 2], id="data"),
        pytest.param({"data": {"id": 1}}, None, [{"id": 1}], id="data-object-is-one-record"),
        pytest.param({"items": []}, None, [], id="empty-items"),
        pytest.param([1, 2], None, [1, 2], id="a-list-page-is-its-records"),
        pytest.param({"available": "1.00"}, None, [{"available": "1.00"}], id="no-list-one-record"),
        pytest.param({"items": "text"}, None, [{"items": "text"}], id="items-not-a-list"),
        pytest.param({"result": {"entries": [3]}, "items": [9]}, "result.entries", [3], id="path"),
        pytest.param({"result": {"entries": {"id": 1}}}, "result.entries", [{"id": 1}], id="path-object"),
        pytest.param({"result": {}}, "result.entries", [], id="path-missing"),
    ],
)
def test_the_records_of_a_page(page, path, records):
    assert records_of(page, path) == records
