"""A local stand-in of Heroku's side of the add-on protocol (see `create_app`, `running_standin`).

It serves the platform API the real `heroku` CLI uses, calls the provider exactly as Heroku does
(provision, plan change, deprovision), issues and exchanges OAuth grants, accepts the provider's
platform calls and log lines, and serves the SSO launch page. Tests read its memory back through
`/_standin/...` (`StandinInspector`)."""

from tests.heroku_standin.app import create_app
from tests.heroku_standin.config import PlanListing, StandinConfig
from tests.heroku_standin.server import (
    RunningStandin,
    StandinInspector,
    bind,
    running_standin,
    serve_wsgi,
)

__all__ = [
    "PlanListing",
    "RunningStandin",
    "StandinConfig",
    "StandinInspector",
    "bind",
    "create_app",
    "running_standin",
    "serve_wsgi",
]
