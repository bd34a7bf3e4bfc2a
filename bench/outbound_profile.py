"""CPU per request of the web's sending path, in one process: the Flask app on embedded
PostgreSQL and Redis (as bench/ runs it), N requests through the test client, timed by
`time.process_time` and optionally under cProfile.

    .venv/bin/python -m bench.outbound_profile [--count N] [--profile] [--what api|ping|both]

Not part of `make bench`: it is how the costs in README's outbound figures were found.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import os
import pstats
import time

from .common import service_env
from .outbound_peers import make_sender, message_body


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--what", default="both", choices=["api", "ping", "both"])
    parser.add_argument("--top", type=int, default=45)
    args = parser.parse_args()
    with service_env(PROVISIONING_MODE="sync", SENDING_DOMAIN_VERIFICATION="off",
                     BOUNCE_DOMAIN="bounces.cloudmailin.test") as env:
        os.environ.update(env)
        from provider import create_app
        from provider.settings import load_settings

        app = create_app(load_settings(env))
        sender = make_sender(env)
        client = app.test_client()
        url = f"/api/v0.1/{sender.username}/messages"
        basic = base64.b64encode(f"cloudmailin:{env['HEROKU_ADDON_PASSWORD']}".encode()).decode()
        bodies = [message_body(n) for n in range(200)]

        def api(n: int) -> None:
            answer = client.post(url, json=bodies[n % len(bodies)], headers=sender.headers)
            assert answer.status_code == 202, answer.get_data()

        def ping(_: int) -> None:
            answer = client.get("/heroku/ping", headers={"Authorization": f"Basic {basic}"})
            assert answer.status_code == 200, answer.get_data()

        chosen = {"api": [api], "ping": [ping], "both": [ping, api]}[args.what]
        for call in chosen:
            for n in range(50):
                call(n)  # warm-up
            profiler = cProfile.Profile() if args.profile else None
            cpu, wall = time.process_time(), time.perf_counter()
            if profiler:
                profiler.enable()
            for n in range(args.count):
                call(n)
            if profiler:
                profiler.disable()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            print(f"{call.__name__}: {cpu / args.count * 1000:.3f} ms CPU, "
                  f"{wall / args.count * 1000:.3f} ms wall per request (this process)")
            if profiler:
                stats = pstats.Stats(profiler)
                stats.sort_stats("cumulative").print_stats(args.top)
                stats.sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
