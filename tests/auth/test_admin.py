"""Administrators list, search, promote, disable and enable users; changes apply at once."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from api.admin import service
from api.audit.models import AuditEvent
from api.auth.models import User
from api.extensions import db
from tests.auth.conftest import PASSWORD, bearer, login, make_verified_user


def test_only_admins_reach_admin_endpoints(app):
    make_verified_user(app, "plain@example.org")
    client = app.test_client()
    response = client.get("/v1/admin/users", headers=bearer(login(client, "plain@example.org")))
    assert response.status_code == 403 and response.get_json()["error"]["code"] == "admin_required"
    assert client.get("/v1/admin/users").status_code == 401


def test_list_search_and_paging(app):
    make_verified_user(app, "root@example.org", role="admin")
    for i in range(5):
        make_verified_user(app, f"user{i}@example.org")
    client = app.test_client()
    headers = bearer(login(client, "root@example.org"))
    page = client.get("/v1/admin/users?per_page=2&page=2", headers=headers).get_json()
    assert page["total"] == 6 and page["page"] == 2 and len(page["items"]) == 2
    found = client.get("/v1/admin/users?q=USER3", headers=headers).get_json()
    assert [u["email"] for u in found["items"]] == ["user3@example.org"]
    bad = client.get("/v1/admin/users?per_page=1000", headers=headers)
    assert bad.status_code == 400 and "per_page" in bad.get_json()["error"]["details"]


def test_disable_ends_sessions_at_once_and_enable_restores(app):
    make_verified_user(app, "root@example.org", role="admin")
    target = make_verified_user(app, "victim@example.org")
    admin_client, user_client = app.test_client(), app.test_client()
    admin = bearer(login(admin_client, "root@example.org"))
    user = bearer(login(user_client, "victim@example.org"))

    response = admin_client.patch(
        f"/v1/admin/users/{target}", headers=admin, json={"disabled": True}
    )
    assert response.status_code == 200 and response.get_json()["disabled"] is True
    assert user_client.get("/v1/auth/me", headers=user).status_code == 401
    csrf = user_client.get_cookie("mg_csrf", path="/").value
    renewed = user_client.post("/v1/auth/refresh", headers={"X-CSRF-TOKEN": csrf})
    assert renewed.status_code == 401  # and it says why, which the web app shows
    assert renewed.get_json()["error"]["message"] == "This account is disabled."
    refused = user_client.post(
        "/v1/auth/login", json={"email": "victim@example.org", "password": PASSWORD}
    )
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "account_disabled"

    admin_client.patch(f"/v1/admin/users/{target}", headers=admin, json={"disabled": False})
    login(user_client, "victim@example.org")
    with app.app_context():
        actions = set(
            db.session.scalars(select(AuditEvent.action).where(AuditEvent.user_id == target))
        )
    assert {"disable", "enable"} <= actions


def test_role_change_applies_to_existing_sessions(app):
    make_verified_user(app, "root@example.org", role="admin")
    target = make_verified_user(app, "promoted@example.org")
    admin_client, user_client = app.test_client(), app.test_client()
    admin = bearer(login(admin_client, "root@example.org"))
    user = bearer(login(user_client, "promoted@example.org"))
    assert user_client.get("/v1/admin/users", headers=user).status_code == 403
    admin_client.patch(f"/v1/admin/users/{target}", headers=admin, json={"role": "admin"})
    assert user_client.get("/v1/admin/users", headers=user).status_code == 200
    admin_client.patch(f"/v1/admin/users/{target}", headers=admin, json={"role": "user"})
    assert user_client.get("/v1/admin/users", headers=user).status_code == 403


def test_admin_cannot_lock_themselves_out_and_bad_fields_are_named(app):
    me = make_verified_user(app, "root@example.org", role="admin")
    client = app.test_client()
    headers = bearer(login(client, "root@example.org"))
    assert (
        client.patch(f"/v1/admin/users/{me}", headers=headers, json={"role": "user"}).status_code
        == 409
    )
    bad = client.patch(f"/v1/admin/users/{me}", headers=headers, json={"role": "emperor"})
    assert bad.status_code == 400 and "role" in bad.get_json()["error"]["details"]
    assert (
        client.patch("/v1/admin/users/424242", headers=headers, json={"role": "user"}).status_code
        == 404
    )


@pytest.mark.parametrize(
    "change", [{"role": "user"}, {"disabled": True}], ids=["demote", "disable"]
)
def test_two_admins_removing_each_other_at_once_leave_one(app, monkeypatch, change):
    # Finding 10 of issue 22. B's request is past B's own checks when A's request, which
    # removes B, commits: B's change would then remove the last enabled admin.
    a = make_verified_user(app, "a@example.org", role="admin")
    b = make_verified_user(app, "b@example.org", role="admin")
    client_a, client_b = app.test_client(), app.test_client()
    as_a, as_b = bearer(login(client_a, "a@example.org")), bearer(login(client_b, "b@example.org"))
    update_user, first = service.update_user, []

    def a_removes_b() -> None:
        first.append(client_a.patch(f"/v1/admin/users/{b}", headers=as_a, json=change))

    def a_commits_first(admin, *args, **kwargs):
        if admin.id == b:  # in a thread of its own, as another worker would: its own session
            thread = threading.Thread(target=a_removes_b)
            thread.start()
            thread.join()
        return update_user(admin, *args, **kwargs)

    monkeypatch.setattr(service, "update_user", a_commits_first)
    second = client_b.patch(f"/v1/admin/users/{a}", headers=as_b, json=change)
    assert first[0].status_code == 200, first[0].get_json()
    assert second.status_code == 409, second.get_json()
    error = second.get_json()["error"]
    assert error["code"] == "last_admin" and error["type"] == "conflict_error"
    assert "last" in error["message"]
    with app.app_context():
        admins = db.session.scalars(
            select(User.email).where(User.role == "admin", User.disabled_at.is_(None))
        ).all()
        refused = db.session.scalars(
            select(AuditEvent.action).where(AuditEvent.user_id == a, AuditEvent.actor_id == b)
        ).all()
    assert admins == ["a@example.org"]
    assert refused == []  # the refused change left no audit event behind
    assert client_a.get("/v1/admin/users", headers=as_a).status_code == 200  # nor ended A's session


def test_create_admin_command_reads_the_password_from_stdin(app):
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["users", "create-admin", "Boss@Example.org"], input=PASSWORD + "\n"
    )
    assert result.exit_code == 0, result.output
    assert "boss@example.org is an administrator" in result.output
    client = app.test_client()
    assert (
        client.get("/v1/admin/users", headers=bearer(login(client, "boss@example.org"))).status_code
        == 200
    )
    weak = runner.invoke(args=["users", "create-admin", "x@example.org"], input="short\n")
    assert weak.exit_code != 0 and "at least 12" in weak.output
    with app.app_context():
        assert db.session.scalar(select(User).where(User.email == "x@example.org")) is None


def test_admins_learn_where_kibana_is(make_app):
    for configured, expected in (
        ("https://kibana.example.org/", "https://kibana.example.org"),
        ("", None),
    ):
        app = make_app(KIBANA_URL=configured.rstrip("/"))
        make_verified_user(app, "root@example.org", role="admin")
        make_verified_user(app, "plain@example.org")
        client = app.test_client()
        admin = bearer(login(client, "root@example.org"))
        assert client.get("/v1/admin/settings", headers=admin).get_json() == {
            "kibana_url": expected
        }
        plain = bearer(login(client, "plain@example.org"))
        assert client.get("/v1/admin/settings", headers=plain).status_code == 403
        with app.app_context():
            db.session.execute(User.__table__.delete())
            db.session.commit()
