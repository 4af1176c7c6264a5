"""The Banking API connection form of Airflow 3.3.2's UI, in a real browser.

Debian's headless Chromium, driven by Playwright (its pip wheel bundles the driver; the browser is the
system's, never downloaded), against the session's ``airflow api-server`` (every user an admin under
the simple auth manager, so there is no login page; ``[core] test_connection = Enabled``) and a sandbox
bank. A user's path: Admin > Connections > Add Connection, "Banking API", fill in the form pasting PEM
text, save, reopen (secrets masked), press the row's Test button and read the message.

Screenshots go to ``.e2e-artifacts/ui-connection-form/`` (the path is printed). With
``BANKAPI_UPDATE_DOCS_SCREENSHOT=1`` the reopened form also refreshes ``docs/connection-form*.png``.
No screenshot is taken while a secret is visible: :func:`screenshot` checks the page first.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from airflow_provider_bankapi.errors import HINT_INVALID_CREDENTIALS
from airflow_provider_bankapi.get_provider_info import get_provider_info

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / ".e2e-artifacts" / "ui-connection-form"
DOCS_SCREENSHOTS = (REPO / "docs" / "connection-form.png", REPO / "docs" / "connection-form-extra-fields.png")
CHROMIUM = "/usr/bin/chromium"
# No sandbox (root in a container), no GPU, and nothing that phones home: loopback is all there is.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
# The UI is React and the machine may be loaded: every wait is generous.
TIMEOUT_MS = 90_000
WRONG_SECRET = "wrong-client-secret-3c9e51a0"

CONNECTION_TYPE = get_provider_info()["connection-types"][0]
FORM_FIELDS = CONNECTION_TYPE["conn-fields"]
STANDARD_LABELS = CONNECTION_TYPE["ui-field-behaviour"]["relabeling"]
PLACEHOLDERS = CONNECTION_TYPE["ui-field-behaviour"]["placeholders"]


@pytest.fixture
def page(tmp_path, capsys):
    """A page of a fresh headless Chromium (its own user-data dir), closed after the test."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            tmp_path / "chromium-profile",
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1280, "height": 900},
        )
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield context.new_page()
        finally:
            context.close()
    with capsys.disabled():
        print(f"\nscreenshots: {ARTIFACTS}")


def screenshot(target, name, secrets):
    """Save a screenshot of ``target`` (a page or an element) after checking no secret is visible.

    Visible means in the page's text or in the value of a field on display (password inputs show dots;
    a collapsed section's fields are not on display). The check runs on the whole page, whatever the
    target.
    """
    page = getattr(target, "page", target)
    shown = page.evaluate(
        """() => [document.body.innerText,
                  ...Array.from(document.querySelectorAll('input:not([type=password]), textarea'))
                      .filter(field => field.checkVisibility())
                      .map(field => field.value)].join('\\n')"""
    )
    visible = [what for what, secret in secrets.items() if secret in shown]
    assert not visible, f"{name}: {visible} visible on the page"
    path = ARTIFACTS / name
    target.screenshot(path=path)
    return path


def secrets_of(sandbox):
    key_body = "".join(Path(sandbox.client_key).read_text().splitlines()[1:-1])
    return {
        "client secret": sandbox.connection["password"],
        "private key": key_body[:40],
        "wrong client secret": WRONG_SECRET,
    }


def open_add_form(page, api_url):
    page.goto(f"{api_url}/connections")
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("combobox").fill("Banking API")
    page.keyboard.press("Enter")
    dialog.get_by_label("Base URL").wait_for()
    return dialog


def field_group(dialog, label):
    """The form row whose label reads ``label`` (Airflow appends a space to extra fields' labels)."""
    return dialog.locator("[data-scope=field][data-part=root]").filter(
        has=dialog.page.locator("label", has_text=label)
    ).first


def check_labels_and_help(dialog):
    """Every field of the form as get_provider_info() declares it: labels, help texts, placeholders."""
    for name, label in STANDARD_LABELS.items():
        assert dialog.locator(f"input[name={name}]").get_attribute("placeholder") == PLACEHOLDERS[name]
        assert field_group(dialog, label).locator(f"[name={name}]").count() == 1, label
    assert dialog.locator("input[name=port]").get_attribute("placeholder") == PLACEHOLDERS["port"]
    assert dialog.locator("input[name=schema]").count() == 0  # hidden
    for key, field in FORM_FIELDS.items():
        group = field_group(dialog, field["label"])
        assert group.locator("label").inner_text().strip() == field["label"], key
        assert group.locator("[data-part=helper-text]").inner_text() == field["description"], key
        assert group.locator(f"[name=element_{key}]").count() == 1, key


def fill_form(dialog, conn_id, connection, client_secret, sandbox):
    """Type the standard fields, then paste each PEM file's text into its field."""
    dialog.get_by_label("Connection ID").fill(conn_id)
    dialog.get_by_label("Base URL").fill(connection["host"])
    dialog.get_by_label("Client ID").fill(connection["login"])
    dialog.get_by_label("Client secret").fill(client_secret)
    dialog.get_by_label("Port").fill(str(connection["port"]))
    open_section(dialog, "Extra Fields")
    for key, path in (
        ("client_cert", sandbox.client_cert),
        ("client_private_key", sandbox.client_key),
        ("ca_cert", sandbox.ca_cert),
    ):
        dialog.locator(f"[name=element_{key}]").fill(Path(path).read_text())


# The form's sections open one at a time; a field of each tells which one is on display.
SECTION_FIELDS = {"Standard Fields": "[name=host]", "Extra Fields": "[name=element_client_cert]"}


def open_section(dialog, section):
    """Open one section of the form (which closes the other) and wait until its fields show."""
    dialog.get_by_role("button", name=section, exact=True).click()
    for name, field in SECTION_FIELDS.items():
        dialog.locator(field).wait_for(state="visible" if name == section else "hidden")


def save(page, dialog, conn_id):
    dialog.get_by_role("button", name="Save").click()
    dialog.wait_for(state="hidden")
    return connection_row(page, conn_id)


def connection_row(page, conn_id):
    row = page.get_by_role("row").filter(has=page.get_by_role("cell", name=conn_id, exact=True))
    row.wait_for()
    return row


def reopen(page, row):
    """The saved connection's edit form, standard fields on display."""
    row.get_by_role("button", name="Edit Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Base URL").wait_for()
    return dialog


def assert_secrets_masked(dialog):
    # Both are masked whether their section is open or not.
    assert dialog.locator("input[name=password]").input_value() == "***"
    assert dialog.locator("[name=element_client_private_key]").input_value() == "***"
    certificate = dialog.locator("[name=element_client_cert]").input_value()
    assert certificate.startswith("-----BEGIN CERTIFICATE-----")  # public: shown as saved


def press_test(page, row):
    """Press the row's Test button; the API's answer and the toast the UI shows for it."""
    with page.expect_response(lambda response: response.url.endswith("/api/v2/connections/test")) as answer:
        row.get_by_role("button", name="Test Connection").click()
    toast = page.locator("[data-scope=toast][data-part=root]").filter(has_text="Test Connection").first
    toast.wait_for()
    # The toast leaves after a few seconds unless the pointer rests on it; let it finish sliding in.
    toast.hover()
    toast.evaluate("toast => Promise.all(toast.getAnimations({subtree: true}).map(a => a.finished))")
    shown = {
        "type": toast.get_attribute("data-type"),
        "title": toast.locator("[data-part=title]").inner_text(),
        "description": toast.locator("[data-part=description]").inner_text(),
    }
    return answer.value, shown


@pytest.mark.timeout(900)
def test_a_connection_made_in_the_form_passes_the_test_button(page, airflow_api_server, bankapi_sandbox):
    secrets = secrets_of(bankapi_sandbox)
    connection = bankapi_sandbox.connection
    dialog = open_add_form(page, airflow_api_server.base_url)
    screenshot(dialog, "1-add-banking-api.png", secrets)
    check_labels_and_help(dialog)

    fill_form(dialog, "bankapi_form", connection, connection["password"], bankapi_sandbox)
    open_section(dialog, "Standard Fields")  # the pasted key, shown as typed, goes out of sight
    screenshot(dialog, "2-add-form-filled.png", secrets)
    row = save(page, dialog, "bankapi_form")

    stored = airflow_api_server.get_json("/api/v2/connections/bankapi_form")
    assert (stored["host"], stored["port"], stored["login"]) == (
        connection["host"], connection["port"], connection["login"]
    )
    assert json.loads(stored["extra"])["client_private_key"] == "***"
    page.set_viewport_size({"width": 1280, "height": 2400})  # each section whole in one picture
    dialog = reopen(page, row)
    assert_secrets_masked(dialog)
    pictures = [screenshot(dialog, "3-reopened-standard-fields.png", secrets)]
    open_section(dialog, "Extra Fields")
    pictures.append(screenshot(dialog, "4-reopened-extra-fields.png", secrets))
    if os.environ.get("BANKAPI_UPDATE_DOCS_SCREENSHOT"):
        for picture, target in zip(pictures, DOCS_SCREENSHOTS, strict=True):
            shutil.copyfile(picture, target)
    page.set_viewport_size({"width": 1280, "height": 900})
    dialog.get_by_role("button", name="Close").click()
    dialog.wait_for(state="hidden")

    answer, shown = press_test(page, row)
    screenshot(page, "5-test-button-success.png", secrets)

    assert answer.status == 200, answer.text()
    assert shown["type"] == "success"
    assert shown["title"] == "Test Connection Successful"
    assert shown["description"] == answer.json()["message"]
    assert shown["description"].startswith("Connected over TLS")
    assert bankapi_sandbox.counters()["tokens_issued"] == 1  # the stored secrets reached the bank


@pytest.mark.timeout(900)
def test_the_test_button_shows_the_banks_reason_for_a_wrong_secret(page, airflow_api_server, bankapi_sandbox):
    secrets = secrets_of(bankapi_sandbox)
    dialog = open_add_form(page, airflow_api_server.base_url)
    fill_form(dialog, "bankapi_form_wrong", bankapi_sandbox.connection, WRONG_SECRET, bankapi_sandbox)
    row = save(page, dialog, "bankapi_form_wrong")
    dialog = reopen(page, row)
    assert_secrets_masked(dialog)
    dialog.get_by_role("button", name="Close").click()
    dialog.wait_for(state="hidden")

    answer, shown = press_test(page, row)
    screenshot(page, "6-test-button-wrong-secret.png", secrets)

    assert answer.status == 200, answer.text()
    assert shown["type"] == "error"
    assert shown["title"] == "Test Connection Failed"
    assert shown["description"] == answer.json()["message"]
    assert "Invalid Credentials" in shown["description"]
    assert HINT_INVALID_CREDENTIALS in shown["description"]
    assert bankapi_sandbox.counters()["token_refused"]
