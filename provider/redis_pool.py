"""One Redis client (connection pool) per URL per process, with short timeouts."""

from __future__ import annotations

from redis import Redis

_connections: dict[str, Redis] = {}

REDIS_TIMEOUT = 1.0
"""Seconds one call through `redis_connection` may take to connect, send or read. Its callers hand
work over after a commit (the web's partner calls) or enqueue from jobs, and the sweep finds what
Redis did not take; a Redis that accepts connections and stops answering cost a provision two of
redis-py's default 5 s (10 s, against Heroku's 3 s), now two of these."""


def redis_connection(redis_url: str) -> Redis:
    """One connection pool per URL per process."""
    conn = _connections.get(redis_url)
    if conn is None:
        conn = _connections[redis_url] = Redis.from_url(
            redis_url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT
        )
    return conn
