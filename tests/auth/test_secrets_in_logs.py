"""No password, token, link or hash ever reaches a log line."""

from __future__ import annotations

from tests.auth.conftest import PASSWORD, bearer, link_token, login
from tests.auth.test_flow import NEW_PASSWORD


def test_account_flows_log_no_secret(mail_app, mailbox, log_lines):
    client = mail_app.test_client()
    address = "quiet@example.org"
    secrets: list[str] = [PASSWORD, NEW_PASSWORD]
    client.post("/v1/auth/register", json={"email": address, "password": PASSWORD})
    verify = link_token(mailbox.wait_for(address, "Confirm"))
    client.post("/v1/auth/verify-email", json={"token": verify})
    client.post("/v1/auth/login", json={"email": address, "password": "wrong password here"})
    access = login(client, address)
    refresh = client.get_cookie("mg_refresh", path="/v1/auth").value
    client.post("/v1/auth/forgot-password", json={"email": address})
    reset = link_token(mailbox.wait_for(address, "Reset"))
    client.post("/v1/auth/reset-password", json={"token": reset, "password": NEW_PASSWORD})
    client.get("/v1/auth/me", headers=bearer(access))
    secrets += [verify, reset, access, refresh, "token=", "$argon2"]

    lines = [line for line in log_lines() if line.get("log.logger") != "mail.log"]  # test server
    assert len(lines) > 8
    text = "\n".join(str(line) for line in lines)
    for secret in secrets:
        assert secret not in text, f"{secret[:12]}... leaked into the logs"
