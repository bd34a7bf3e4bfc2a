"""`PUT /heroku/resources/<id>`: plan changes (spec/heroku.md, Plan change)."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from provider.models import AppLogLine, Domain, Resource
from provider.models.domain import INBOUND

from .partner import provision, send


def _put(client, settings, resource_id, body):
    return send(client, settings, "PUT", f"/heroku/resources/{resource_id}", body)


def _plan(db_session, resource_id):
    db_session.expire_all()
    return db_session.get(Resource, resource_id).plan


def test_upgrade_answers_200_with_a_message_and_takes_effect(client, settings, db_session):
    resource_id = provision(client, settings).json["id"]
    response = _put(
        client, settings, resource_id, {"plan": "premium", "heroku_id": "app123@heroku.com"}
    )
    assert response.status_code == 200
    assert "premium" in response.json["message"]
    assert _plan(db_session, resource_id) == "premium"


def test_plan_change_is_logged_to_the_app_log(client, settings, db_session):
    resource_id = provision(client, settings).json["id"]
    _put(client, settings, resource_id, {"plan": "cloudmailin:premium"})
    lines = db_session.scalars(select(AppLogLine.message).order_by(AppLogLine.id)).all()
    assert lines[-1] == "cloudmailin: plan changed from=starter to=premium"


def test_same_plan_is_a_200_no_op(client, settings, db_session):
    resource_id = provision(client, settings).json["id"]
    before = db_session.get(Resource, resource_id).updated_at
    response = _put(client, settings, resource_id, {"plan": "starter"})
    assert response.status_code == 200
    assert response.json["message"]
    db_session.expire_all()
    assert db_session.get(Resource, resource_id).updated_at == before
    assert len(db_session.scalars(select(AppLogLine)).all()) == 1


def test_unknown_plan_is_422_and_nothing_changes(client, settings, db_session):
    resource_id = provision(client, settings).json["id"]
    response = _put(client, settings, resource_id, {"plan": "platinum"})
    assert response.status_code == 422
    assert "starter" in response.json["message"]
    assert _plan(db_session, resource_id) == "starter"


def test_unknown_id_is_404(client, settings):
    response = _put(client, settings, str(uuid.uuid4()), {"plan": "premium"})
    assert response.status_code == 404
    assert response.is_json and response.json["message"]


def test_a_path_id_that_is_not_a_uuid_is_404(client, settings):
    response = _put(client, settings, "not-a-uuid", {"plan": "premium"})
    assert response.status_code == 404
    assert response.is_json


def test_plan_change_of_a_deprovisioned_resource_is_410(client, settings):
    resource_id = provision(client, settings).json["id"]
    send(client, settings, "DELETE", f"/heroku/resources/{resource_id}")
    assert _put(client, settings, resource_id, {"plan": "premium"}).status_code == 410


def test_downgrade_below_the_custom_domains_in_use_is_422_saying_why(client, settings, db_session):
    resource_id = provision(client, settings, plan="premium").json["id"]
    for name in ("a.example.com", "b.example.com"):
        db_session.add(Domain(resource_id=resource_id, name=name, kind=INBOUND))
    db_session.commit()
    response = _put(client, settings, resource_id, {"plan": "starter"})
    assert response.status_code == 422
    assert "custom domains" in response.json["message"] and "2" in response.json["message"]
    assert _plan(db_session, resource_id) == "premium"


def test_downgrade_within_the_new_plans_limits_is_allowed(client, settings, db_session):
    resource_id = provision(client, settings, plan="premium").json["id"]
    db_session.add(Domain(resource_id=resource_id, name="a.example.com", kind=INBOUND))
    db_session.commit()
    assert _put(client, settings, resource_id, {"plan": "starter"}).status_code == 200
    assert _plan(db_session, resource_id) == "starter"


def test_plan_change_bodies_that_are_wrong_are_4xx_json(client, settings, db_session):
    resource_id = provision(client, settings).json["id"]
    path = f"/heroku/resources/{resource_id}"
    assert send(client, settings, "PUT", path, raw=b"nope").status_code == 400
    assert send(client, settings, "PUT", path, raw=b"[]").status_code == 400
    assert send(client, settings, "PUT", path).status_code == 400
    assert send(client, settings, "PUT", path, {"name": "x"}).status_code == 422
    assert send(client, settings, "PUT", path, {"plan": 3}).status_code == 422
    assert _plan(db_session, resource_id) == "starter"
