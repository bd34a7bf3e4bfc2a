"""The domain and the non-web processes load no web framework: the SMTP edge and the workers
import provider.* (models, services, inbound parsing, outbound rules), and Flask must stay the
web process's own (provider/extensions.py, provider/views, provider/cli.py)."""

import pkgutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WEB_ONLY = ("provider.views", "provider.cli", "provider.extensions")
NOT_DOMAIN = ("provider.migrations",)  # run by Flask-Migrate (alembic), never imported by a process


def _modules(package: str) -> list[str]:
    path = ROOT / package.replace(".", "/")
    found = [package]
    for info in pkgutil.walk_packages([str(path)], prefix=f"{package}."):
        # `__main__` modules run their process when imported; the modules they start are walked.
        if not info.name.startswith(WEB_ONLY + NOT_DOMAIN) and not info.name.endswith(".__main__"):
            found.append(info.name)
    return found


def _flask_loaders(modules: list[str]) -> str:
    """Import each module in a fresh interpreter; print the first one after which Flask was loaded."""
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "    if any(m == 'flask' or m.startswith(('flask.', 'flask_')) for m in sys.modules):\n"
        "        print(name)\n"
        "        break\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=True)
    return done.stdout.strip()


def test_the_smtp_edge_loads_no_flask():
    assert _flask_loaders(_modules("smtp_edge")) == ""


def test_the_workers_load_no_flask():
    assert _flask_loaders(_modules("workers")) == ""


def test_the_domain_loads_no_flask():
    domain = ["provider"] + [m for p in ("provider.services", "provider.models", "provider.inbound",
                                         "provider.outbound") for m in _modules(p)]
    domain += ["provider.db", "provider.tasks", "provider.settings", "provider.crypto", "provider.dns"]
    assert _flask_loaders(domain) == ""


def test_the_job_interface_loads_no_queue_library():
    """Services state what runs after their commit through provider.jobs (JobQueue); RQ and Redis
    stay behind it, in provider/tasks.py."""
    script = (
        "import sys, provider.jobs; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'rq', 'redis'}))"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.strip() == "[]"
