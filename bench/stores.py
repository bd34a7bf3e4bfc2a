"""The attachment store on a real SeaweedFS, through the real SMTP edge (`python -m smtp_edge`).

    .venv/bin/python -m bench.stores [--steady SECONDS]   (also run by `make bench`)

Processes: the edge on embedded PostgreSQL and Redis, the aiohttp target of bench/inbound.py,
SeaweedFS (`weed server -s3`, dev/services.py) on loopback, and this process, the load tool.
Two addresses of one add-on: one without a store, one storing attachments in SeaweedFS.

Targets (issue 10): with the attachment store on, the latency the edge adds (end of DATA -> 250,
minus the target's own time; the uploads are part of it) p99 < 50 ms at a steady 50 messages/s
for 5 KB messages with one 1.5 KB attachment; a 25 MB attachment sent to the store grows the
edge's peak RSS by less than 2x the message's size.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import tempfile
from pathlib import Path

from dev.services import S3Server, start_seaweedfs

from .common import service_env, verdict
from .inbound import MB, big, pct, steady, target_times
from .inbound_peers import child, edge_process, make_address, target_main
from .smtp_load import build_message

BUCKET = "bench-mail"
BIG_ATTACHMENT = 25 * MB


def with_store(env: dict[str, str], rcpt: str, s3: S3Server) -> None:
    """Point the address at SeaweedFS, as a PATCH of its store would (after its test object)."""
    from provider.db import session_factory
    from provider.models import Address
    from provider.services.stores import StoreConfig, check_store, write_config
    from provider.settings import load_settings

    settings = load_settings(env)
    config = StoreConfig(BUCKET, "bench", "us-east-1", s3.endpoint_url, s3.access_key_id,
                         s3.secret_access_key, attachments=True, messages=False)
    check_store(config, settings.store_timeout)
    with session_factory(settings.database_url)() as session:
        address = session.query(Address).filter_by(local_id=rcpt.split("@")[0]).one()
        write_config(settings, address, config)
        session.commit()


async def measure(args: argparse.Namespace, env: dict[str, str], target_url: str, nameservers: str,
                  s3: S3Server) -> None:
    plain_rcpt = make_address(env, target_url)
    store_rcpt = make_address(env, target_url)
    with_store(env, store_rcpt, s3)
    attachment = os.urandom(1500)
    with edge_process(env, nameservers) as (edge_port, edge):
        await steady(edge_port, store_rcpt, 2, attachment)  # warm-up: clients, connections
        plain_ids, plain_raw = await steady(edge_port, plain_rcpt, args.steady, attachment)
        store_ids, store_raw = await steady(edge_port, store_rcpt, args.steady, attachment)
        _, times = await target_times(target_url)
        big_attachment = os.urandom(BIG_ATTACHMENT)
        inline = await big(edge_port, edge, plain_rcpt, build_message(0, big_attachment, plain_rcpt), 1)
        run = await big(edge_port, edge, store_rcpt, build_message(0, big_attachment, store_rcpt), 1)

    def added(ids: list[int], raw: list[float]) -> list[float]:
        return [lat - times[i] for i, lat in zip(ids, raw, strict=True) if i in times]

    plain, stored = added(plain_ids, plain_raw), added(store_ids, store_raw)
    print(f"\nbench.stores ({os.cpu_count()} cores; edge = python -m smtp_edge; store = SeaweedFS)")
    print("  steady 50 msg/s, 5 KB messages, one 1.5 KB attachment, added by the edge (minus the target):")
    for name, values in (("without a store", plain), ("attachment store on", stored)):
        print(f"    {name:<22} p50={pct(values, 50):6.2f} ms  p99={pct(values, 99):6.2f} ms  n={len(values)}")
    grown = (run.peak - run.baseline) / run.message_size
    for name, one in (("inline (no store)", inline), ("to the store", run)):
        more = one.peak - one.baseline
        print(f"  25 MB attachment {name} ({one.message_size / MB:.1f} MB message): {one.ok} accepted in "
              f"{one.seconds:.1f} s; RSS {one.baseline / MB:.0f} MB -> peak {one.peak / MB:.0f} MB "
              f"(+{more / MB:.0f} MB: {more / one.message_size:.2f}x the message, "
              f"{more / BIG_ATTACHMENT:.2f}x the attachment)")
    print(verdict("attachment store: added latency p99 < 50 ms at 50 msg/s", pct(stored, 99) < 50,
                  f"p99 {pct(stored, 99):.1f} ms (without a store {pct(plain, 99):.1f} ms)"))
    print(verdict("a 25 MB attachment to the store adds < 2x the message size", grown < 2 and run.ok == 1,
                  f"{grown:.2f}x"))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--steady", type=float, default=10.0, help="seconds at 50 messages/s, each address")
    args = parser.parse_args()
    from provider.outbound.dkim import new_key_pair

    public_key = new_key_pair()[1]  # the target's DNS zone publishes one (bench/inbound.py signs with it)
    with (
        tempfile.TemporaryDirectory(prefix="bench-seaweedfs-") as folder,
        service_env(PROVISIONING_MODE="sync") as env,
        child(target_main, public_key) as (target_port, nameservers),
    ):
        s3 = start_seaweedfs(Path(folder), "bench-key", secrets.token_hex(16), buckets=(BUCKET,))
        try:
            asyncio.run(measure(args, env, f"http://127.0.0.1:{target_port}/incoming", nameservers, s3))
        finally:
            s3.stop()


if __name__ == "__main__":
    main()
