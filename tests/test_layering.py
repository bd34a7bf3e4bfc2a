"""The domain and the non-web processes load no web framework: the SMTP edge and the workers
import provider.* (models, services, inbound parsing, outbound rules), and Flask must stay the
web process's own (provider/extensions.py, provider/views, provider/cli.py). Likewise the domain
loads no queue library: RQ and Redis stay behind provider/jobs.py's `JobQueue`."""

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


def _first_loader(modules: list[str], libraries: tuple[str, ...] = ("flask",)) -> str:
    """Import each module in a fresh interpreter; print the first one after which one of
    `libraries` (Flask and its extensions by default) was loaded."""
    script = (
        "import importlib, sys\n"
        f"libraries = {libraries!r}\n"
        "def loaded(m):\n"
        "    return any(m == lib or m.startswith((lib + '.', lib + '_')) for lib in libraries)\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "    if any(loaded(m) for m in sys.modules):\n"
        "        print(name)\n"
        "        break\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=True)
    return done.stdout.strip()


def test_the_smtp_edge_loads_no_flask():
    assert _first_loader(_modules("smtp_edge")) == ""


def test_the_workers_load_no_flask():
    assert _first_loader(_modules("workers")) == ""


def _domain() -> list[str]:
    return ["provider"] + [m for p in ("provider.services", "provider.models", "provider.inbound",
                                       "provider.outbound") for m in _modules(p)]


def test_the_domain_loads_no_flask():
    domain = [*_domain(), "provider.db", "provider.tasks", "provider.settings", "provider.crypto",
              "provider.dns"]
    assert _first_loader(domain) == ""


def test_the_domain_loads_no_queue_library():
    """Services hand work to `JobQueue` (provider/jobs.py); RQ's implementation (provider/tasks.py,
    provider/log_shipping_queue.py) is loaded by the processes, not by importing a service."""
    domain = [*_domain(), "provider.db", "provider.settings", "provider.crypto", "provider.dns",
              "provider.jobs"]
    assert _first_loader(domain, ("rq", "redis")) == ""


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
