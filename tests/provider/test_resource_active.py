"""`Resource.active` is one rule read two ways: on a loaded row, and as SQL in the queries that
authenticate and route (services/credentials.py, services/routing.py)."""

import uuid

from sqlalchemy import select

from provider.models import Resource
from provider.models.resource import DEPROVISIONED, PROVISIONED, PROVISIONING


def test_only_the_deprovisioned_tombstone_is_inactive_in_python_and_in_sql(db_session):
    ids = {state: str(uuid.uuid4()) for state in (PROVISIONING, PROVISIONED, DEPROVISIONED)}
    db_session.add_all(Resource(id=rid, plan="free", state=state) for state, rid in ids.items())
    db_session.commit()
    in_sql = set(db_session.scalars(select(Resource.id).where(Resource.active)))
    in_python = {r.id for r in db_session.scalars(select(Resource)) if r.active}
    assert in_sql == in_python == {ids[PROVISIONING], ids[PROVISIONED]}
