"""The dashboard over a long history, beside `/healthz` in the same run.

    make bench            # or: .venv/bin/python -m bench.dashboard [--inbound N] [--outbound M] [--rounds R]

Runs the real web process (the Procfile's web line: gunicorn, 2 gevent workers) on embedded
PostgreSQL and Redis, provisions 11 add-ons through the partner API, bulk-loads 1,000,000 inbound
history rows and 200,000 sent messages (one recipient and two events each) for one of them and a
two-hundredth of that for each of the 10 others (`bench/dashboard_rows.py`), signs in through
`POST /sso/login` as Heroku's launch page does, and measures, sequentially in interleaved rounds:
`/healthz` (the baseline), the overview, the first inbound history page, a filtered search
(outcome, a `to` or `subject` search and a date range, varied per request) and a message's detail.
Server-side times are the web process's own access log (`%(L)s`, the Procfile's format); the
client's are shown beside them. Then the archive download: rows per second, and the RSS of the web
workers sampled every 0.2 s while it streams.
Targets (issue 11): each page p95 < 150 ms server-side; the archive >= 20,000 rows/s with flat memory.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import re
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import psycopg
from redis import Redis

from .common import Figures, server_pid, service_env, verdict, web_process
from .dashboard_rows import CUSTOMERS, analyze, create_again, load_history, without_search_indexes

HEROKU_MEDIA_TYPE = "application/vnd.heroku-addons+json; version=3"
WORKERS = 2
TARGET_MS = 150.0
TARGET_ROWS_PER_S = 20_000
OTHERS = 10
RSS_GROWTH_LIMIT_MB = 64.0
"""'Flat memory': the workers' RSS may grow by at most this much over the whole download."""
_ACCESS = re.compile(r'"GET (\S+) HTTP/[\d.]+" (\d{3}) \S+ ([\d.]+)s')


class AccessLog:
    """The web process's access log: the server-side time of each request since a mark."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def mark(self) -> int:
        return self.path.stat().st_size

    def times_since(self, mark: int, path: str) -> list[float]:
        with self.path.open("rb") as log:
            log.seek(mark)
            lines = log.read().decode(errors="replace").splitlines()
        return [float(m.group(3)) for line in lines if (m := _ACCESS.search(line)) and m.group(1) == path]


@dataclass
class Page:
    name: str
    path: str
    urls: list[str]


async def provision(http: aiohttp.ClientSession, base_url: str, password: str, plan: str) -> str:
    body = {"uuid": str(uuid.uuid4()), "plan": plan, "region": "amazon-web-services::us-east-1",
            "callback_url": "http://127.0.0.1:9/addons/x", "options": {}}
    headers = {"Content-Type": HEROKU_MEDIA_TYPE,
               "Authorization": aiohttp.encode_basic_auth("cloudmailin", password)}
    async with http.post(f"{base_url}/heroku/resources", data=json.dumps(body), headers=headers) as resp:
        answer = await resp.json(content_type=None)
        assert resp.status in (200, 201, 202), answer
        return str(answer["id"])


async def sign_in(http: aiohttp.ClientSession, base_url: str, salt: str, resource_id: str) -> str:
    """The session cookie Heroku's launch page would leave (the resource token, spec/heroku.md)."""
    ts = str(int(time.time()))
    token = hashlib.sha1(f"{resource_id}:{salt}:{ts}".encode()).hexdigest()  # noqa: S324  (Heroku's)
    form = {"resource_id": resource_id, "timestamp": ts, "resource_token": token,
            "email": "bench@example.com", "app": "bench-app"}
    async with http.post(f"{base_url}/sso/login", data=form, allow_redirects=False) as resp:
        assert resp.status == 302, await resp.text()
        return "; ".join(f"{name}={morsel.value}" for name, morsel in resp.cookies.items())


def pages(database_url: str, resource_id: str, count: int) -> list[Page]:
    """What each measured request asks for: searches and details vary from request to request."""
    with psycopg.connect(database_url) as conn:
        ids = [row[0] for row in conn.execute(
            "SELECT id FROM inbound_messages WHERE resource_id = %s ORDER BY random() LIMIT %s",
            (resource_id, count))]
    today = datetime.now(UTC).date()
    rng = random.Random(11)
    searches = []
    for n in range(count):
        since = today - timedelta(days=rng.randint(20, 80))
        query = {"outcome": rng.choice(("accepted", "rejected", "deferred")),
                 "since": since.isoformat(), "until": (since + timedelta(days=14)).isoformat()}
        if n % 2:
            query["subject"] = f"customer {rng.randrange(CUSTOMERS)}"
        else:
            query["to"] = f"support+{rng.randrange(500)}@"
        searches.append("/dashboard/inbound?" + urlencode(query))
    return [
        Page("overview", "/dashboard", ["/dashboard"] * count),
        Page("first inbound page", "/dashboard/inbound", ["/dashboard/inbound"] * count),
        Page("filtered search", "/dashboard/inbound", searches),
        Page("message detail", "/dashboard/inbound/<id>", [f"/dashboard/inbound/{i}" for i in ids]),
    ]


async def measure(http: aiohttp.ClientSession, base_url: str, log: AccessLog, page: Page,
                  label: str) -> tuple[Figures, list[float]]:
    """The page's requests one after another; the client's latencies and the server's times
    (read from the access log once the phase is over: a worker logs a request after answering it)."""
    latencies, errors = [], 0
    mark = log.mark()
    started = time.perf_counter()
    for url in page.urls:
        begin = time.perf_counter()
        async with http.get(base_url + url, allow_redirects=False) as resp:
            await resp.read()
            ok = resp.status == 200
        if ok:
            latencies.append(time.perf_counter() - begin)
        errors += not ok
    elapsed = time.perf_counter() - started
    await asyncio.sleep(0.3)
    paths = {url.partition("?")[0] for url in page.urls}
    server = [t for path in paths for t in log.times_since(mark, path)]
    return Figures(label, latencies, elapsed, errors), server


async def cold_overview(http: aiohttp.ClientSession, base_url: str, log: AccessLog, redis_url: str,
                        count: int = 5) -> list[float]:
    """The overview's server time when the past days' counts are not kept (the first view in an
    hour, services/daily_counts.py): the Redis key removed before each request."""
    redis = Redis.from_url(redis_url)
    times = []
    for _ in range(count):
        for key in redis.scan_iter("cloudmailin:daily_counts:*"):
            redis.delete(key)
        _, server = await measure(http, base_url, log, Page("overview", "/dashboard", ["/dashboard"]), "cold")
        times.extend(server)
    return times


def worker_pids(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children")
    return [int(pid) for pid in children.read_text().split()] if children.exists() else []


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def archive(http: aiohttp.ClientSession, base_url: str, master: int) -> tuple[int, float, list[float]]:
    """Lines, seconds, and the workers' summed RSS (MB) sampled while the download streams."""
    samples: list[float] = []
    done = asyncio.Event()

    async def sample() -> None:
        while not done.is_set():
            samples.append(sum(rss_mb(pid) for pid in worker_pids(master)))
            await asyncio.sleep(0.2)

    sampler = asyncio.create_task(sample())
    lines = 0
    started = time.perf_counter()
    async with http.get(f"{base_url}/dashboard/archive") as resp:
        assert resp.status == 200, await resp.text()
        async for chunk in resp.content.iter_chunked(1 << 16):
            lines += chunk.count(b"\n")
    elapsed = time.perf_counter() - started
    done.set()
    await sampler
    return lines, elapsed, samples


def pct(seconds: list[float], q: float) -> float:
    """The q-th percentile in milliseconds."""
    return Figures("", seconds, 1.0, 0).pct(q)


async def run(env: dict[str, str], base_url: str, log: AccessLog, args: argparse.Namespace,
              master: int) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as anonymous:
        password = env["HEROKU_ADDON_PASSWORD"]
        big = await provision(anonymous, base_url, password, "corp2m")
        others = [await provision(anonymous, base_url, password, "premium") for _ in range(OTHERS)]
        started = time.perf_counter()
        indexes = without_search_indexes(env["DATABASE_URL"])
        load_history(env["DATABASE_URL"], big, inbound=args.inbound, outbound=args.outbound)
        for other in others:
            load_history(env["DATABASE_URL"], other,
                         inbound=args.inbound // 200, outbound=args.outbound // 200)
        create_again(env["DATABASE_URL"], indexes)
        analyze(env["DATABASE_URL"])
        loaded = time.perf_counter() - started
        print(f"\nloaded {args.inbound:,} inbound and {args.outbound:,} outbound rows for one add-on "
              f"(and a 200th of that for {OTHERS} others) in {loaded:.1f} s, with the trigram "
              "indexes built after the rows and VACUUM ANALYZE")
        cookie = await sign_in(anonymous, base_url, env["HEROKU_SSO_SALT"], big)
    headers = {"Cookie": cookie}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=8), headers=headers) as http:
        measured = pages(env["DATABASE_URL"], big, args.requests)
        healthz = Page("/healthz", "/healthz", ["/healthz"] * args.requests)
        for page in [healthz, *measured]:  # warm both workers' pools, caches and prepared statements
            await measure(http, base_url, log, Page(page.name, page.path, page.urls[:10]), "warm-up")
        results: dict[str, tuple[list[float], list[float], int]] = {}
        for n in range(args.rounds):
            for page in [healthz, *measured]:
                figures, server = await measure(http, base_url, log, page, page.name)
                client, times, errors = results.setdefault(page.name, ([], [], 0))
                client.extend(figures.latencies)
                times.extend(server)
                results[page.name] = (client, times, errors + figures.errors)
            print(f"  round {n + 1} of {args.rounds} done")
        cold = await cold_overview(http, base_url, log, env["REDIS_URL"])
        lines, elapsed, samples = await archive(http, base_url, master)
    print(f"\nbench.dashboard (the Procfile's web line, {WORKERS} workers; sequential requests, "
          f"{args.rounds} rounds of {args.requests} per page)")
    print(f"  {'':<22} {'server p50':>11} {'server p95':>11} {'client p50':>11} {'client p95':>11}  errors")
    for name, (client, server, errors) in results.items():
        print(f"  {name:<22} {pct(server, 50):8.1f} ms {pct(server, 95):8.1f} ms "
              f"{pct(client, 50):8.1f} ms {pct(client, 95):8.1f} ms  {errors}")
    slowest = max(cold, default=float("nan")) * 1000
    print(f"  {'overview, cold':<22} {pct(cold, 50):8.1f} ms {slowest:8.1f} ms (max)"
          f"   past days not in Redis ({len(cold)} requests; not a target: once an hour per add-on)")
    baseline = pct(results["/healthz"][1], 95)
    for page in measured:
        client, server, errors = results[page.name]
        p95 = pct(server, 95)
        print(verdict(f"{page.name} p95 < {TARGET_MS:.0f} ms server-side", p95 < TARGET_MS and not errors,
                      f"{p95:.1f} ms over {len(server)} requests (/healthz p95 {baseline:.1f} ms), "
                      f"{errors} errors"))
    rows = lines - 2
    rate = rows / elapsed if elapsed else 0.0
    growth = max(samples) - samples[0] if samples else float("nan")
    print(f"  archive: {rows:,} rows in {elapsed:.1f} s; workers' RSS {samples[0]:.0f} MB at the start, "
          f"peak {max(samples):.0f} MB, {samples[-1]:.0f} MB at the end ({len(samples)} samples)")
    print(verdict(f"archive >= {TARGET_ROWS_PER_S:,} rows/s", rate >= TARGET_ROWS_PER_S,
                  f"{rate:,.0f} rows/s"))
    print(verdict(f"archive memory flat (growth < {RSS_GROWTH_LIMIT_MB:.0f} MB)",
                  growth < RSS_GROWTH_LIMIT_MB, f"peak growth {growth:.1f} MB"))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--inbound", type=int, default=1_000_000,
                        help="inbound history rows of the big add-on")
    parser.add_argument("--outbound", type=int, default=200_000, help="sent messages of the big add-on")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds over the pages")
    parser.add_argument("--requests", type=int, default=40, help="requests per page and round")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp, service_env(
        PROVISIONING_MODE="sync"
    ) as env:
        log = AccessLog(Path(tmp) / "access.log")
        with web_process(env, workers=WORKERS, access_log=log.path) as base_url:
            asyncio.run(run(env, base_url, log, args, server_pid(base_url)))


if __name__ == "__main__":
    main()
