import ast
import importlib
import re
from pathlib import Path

from rq import Queue

from provider.models import Resource
from provider.tasks import JOB_NAMES, Job, enqueue_after_commit, redis_connection

JOB_PATH = re.compile(r"workers(\.\w+)+")


def _queued(settings):
    return Queue("default", connection=redis_connection(settings.redis_url)).job_ids


def test_job_is_enqueued_only_once_the_transaction_commits(settings, db_session):
    db_session.add(Resource(id="00000000-0000-0000-0000-000000000001", plan="free"))
    enqueue_after_commit(db_session, settings.redis_url, Job("builtins.print", ("x",)))
    assert _queued(settings) == []
    db_session.commit()
    assert len(_queued(settings)) == 1


def test_job_is_dropped_when_the_transaction_rolls_back(settings, db_session):
    db_session.add(Resource(id="00000000-0000-0000-0000-000000000002", plan="free"))
    enqueue_after_commit(db_session, settings.redis_url, Job("builtins.print", ("x",)))
    db_session.rollback()
    db_session.commit()
    assert _queued(settings) == []


def test_every_job_name_imports_to_the_function_it_names():
    """RQ imports a job's dotted name only when a worker runs it: a renamed function would be
    enqueued for ever and fail every time."""
    for name in JOB_NAMES:
        module, _, attr = name.rpartition(".")
        func = getattr(importlib.import_module(module), attr)
        assert callable(func), name
        assert f"{func.__module__}.{func.__qualname__}" == name


def test_job_names_are_written_only_in_the_table():
    """A module enqueueing by a dotted string of its own would escape the check above."""
    root = Path(__file__).resolve().parent.parent
    written = []
    for package in ("provider", "smtp_edge", "workers"):
        for path in (root / package).rglob("*.py"):
            if path == root / "provider" / "jobs.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and JOB_PATH.fullmatch(str(node.value)):
                    written.append(f"{path.relative_to(root)}: {node.value}")
    assert written == []
