"""Provisioning through the partner API (sync mode), against a trivial endpoint of the same app.

    make bench            # or: .venv/bin/python -m bench.provision [--total N] [--rounds R]

Runs the real web process (the Procfile's web line: gunicorn, gevent workers) on embedded
PostgreSQL and Redis, then measures POST /heroku/resources sequentially and with 20 concurrent
clients, beside GET /heroku/ping (Basic-authenticated JSON, no database work) measured the same
way in the same run.
Targets (issue 3): p99 < 100 ms at 20 concurrent clients; throughput >= 1/3 of the trivial endpoint's.

The load client is this process (aiohttp); it shares the 2 cores with the servers, so every
measurement also reports the CPU each process group spent per request (web = gunicorn master and
workers, postgres = postmaster and backends, redis, client). The concurrent measurements run in
interleaved rounds (ping, provision, ping, provision, ...) so a neighbour's load on this shared
machine hits both endpoints alike; the ratio is the median of the rounds' ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import uuid

import aiohttp
import psycopg

from .common import CpuMeter, Figures, run_load, service_env, verdict, web_process

HEROKU_MEDIA_TYPE = "application/vnd.heroku-addons+json; version=3"
WORKERS = 2  # the Procfile's web process on a 2-core dyno (WEB_CONCURRENCY=2)


async def measure(
    base_url: str, password: str, total: int, rounds: int, meter: CpuMeter
) -> tuple[list[Figures], list[tuple[Figures, Figures]]]:
    auth = "Basic " + base64.b64encode(f"cloudmailin:{password}".encode()).decode()
    headers = {"Authorization": auth, "Content-Type": HEROKU_MEDIA_TYPE}
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as http:

        async def provision(_: int) -> bool:
            body = {
                "uuid": str(uuid.uuid4()),
                "plan": "starter",
                "region": "amazon-web-services::us-east-1",
                "callback_url": "http://127.0.0.1:9/addons/x",
                "options": {"target": "https://example.test/incoming"},
                "log_input_url": "http://token:t@127.0.0.1:9/logs",
            }
            async with http.post(f"{base_url}/heroku/resources", data=json.dumps(body)) as resp:
                await resp.read()
                return resp.status in (200, 201)

        async def ping(_: int) -> bool:
            async with http.get(f"{base_url}/heroku/ping") as resp:
                await resp.read()
                return resp.status == 200

        # Warm both paths at full concurrency: every worker thread's pooled connection, imports,
        # SQLAlchemy's compiled cache and psycopg's server-side prepared statements.
        await run_load("warm-up", 400, 20, provision)
        await run_load("warm-up", 400, 20, ping)
        sequential = [
            await run_load("trivial GET /heroku/ping  c=1", max(total // 4, 50), 1, ping, meter),
            await run_load("provision POST /heroku/resources  c=1", max(total // 4, 50), 1, provision, meter),
        ]
        concurrent = []
        for n in range(1, rounds + 1):
            trivial = await run_load(f"trivial GET /heroku/ping  c=20 #{n}", total, 20, ping, meter)
            provisions = await run_load(
                f"provision POST /heroku/resources  c=20 #{n}", total, 20, provision, meter
            )
            concurrent.append((trivial, provisions))
        return sequential, concurrent


def durability(database_url: str) -> str:
    """The settings that decide whether a commit waits for the disk, shown beside the figures."""
    names = ("fsync", "synchronous_commit", "wal_sync_method", "full_page_writes")
    with psycopg.connect(database_url) as conn:
        return ", ".join(f"{n}={conn.execute(f'SHOW {n}').fetchone()[0]}" for n in names)  # type: ignore[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--total", type=int, default=1000, help="requests per concurrent measurement")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved concurrent rounds")
    args = parser.parse_args()
    with service_env(PROVISIONING_MODE="sync") as env, web_process(env, workers=WORKERS) as base_url:
        meter = CpuMeter(web=base_url, postgres=env["DATABASE_URL"], redis=env["REDIS_URL"])
        settings = durability(env["DATABASE_URL"])
        sequential, concurrent = asyncio.run(
            measure(base_url, env["HEROKU_ADDON_PASSWORD"], args.total, args.rounds, meter)
        )
    print(f"\nbench.provision (the Procfile's web line, {WORKERS} workers; "
          f"embedded PostgreSQL: {settings})")
    for figures in [*sequential, *(f for pair in concurrent for f in pair)]:
        print("  " + figures.row())
        print("  " + figures.cpu_row())
    ratios = [p.rate / t.rate for t, p in concurrent if t.rate]
    ratio = statistics.median(ratios) if ratios else 0.0
    latencies = [x for _, p in concurrent for x in p.latencies]
    p99 = Figures("all rounds", latencies, 1.0, 0).pct(99)
    rates = ", ".join(f"{p.rate:.0f}/{t.rate:.0f}" for t, p in concurrent)
    print(verdict("p99 at 20 concurrent < 100 ms", p99 < 100,
                  f"{p99:.1f} ms over {len(latencies)} provisions"))
    print(verdict("throughput >= 1/3 of trivial", ratio >= 1 / 3,
                  f"median ratio {ratio:.2f} (provisions/pings per s by round: {rates})"))


if __name__ == "__main__":
    main()
