"""The dashboard benchmark's history, written fast: one `INSERT ... SELECT generate_series` per table.

Rows look like a busy account's: inbound spread evenly over the last `DAYS` days (mostly 201s,
some 4xx, 5xx, refusals and timeouts), to the forward address and a handful of custom-domain
addresses, from a few thousand senders, subjects with an order number and a customer number;
outbound messages with one recipient each (mostly delivered, some bounced, deferred or out of
retries) and two events each (queued, then the final state with the remote reply). Writing in
SQL keeps a million rows to tens of seconds on 2 cores; row-by-row through the app would take hours.
"""

from __future__ import annotations

import psycopg

DAYS = 90
CUSTOMERS = 10_007
"""Subjects end in `customer <n % CUSTOMERS>`: a search for one customer matches about 1 row in 10,000."""

_INBOUND = """
INSERT INTO inbound_messages (
    resource_id, address_id, received_at, envelope_from, envelope_to, recipients, message_id,
    subject, size, spf_result, tls, remote_ip, target_url, status, http_status, smtp_reply,
    response_body, target_ms, dkim_result, dmarc_result)
SELECT %(resource_id)s::text, %(address_id)s::bigint, r.at, r.sender, r.rcpt, ARRAY[r.rcpt],
       '<' || g || '.' || %(resource_id)s::text || '@bench.example>',
       'Order ' || g || ' for customer ' || (g %% %(customers)s::int), 800 + (g * 7919) %% 60000, 'pass',
       g %% 4 <> 0, '192.0.2.' || (g %% 250), 'https://app.example/mail', r.status,
       CASE WHEN r.status ~ '^[0-9]+$' THEN r.status::int END,
       CASE WHEN r.status LIKE '2%%' THEN '250 2.0.0 Accepted' WHEN r.status LIKE '4%%'
            THEN '550 5.0.0 The target refused the message' ELSE '451 4.3.0 Try again later' END,
       CASE WHEN r.status NOT LIKE '2%%' THEN 'target said no to ' || g END,
       CASE WHEN r.status ~ '^[0-9]+$' THEN 20 + g %% 400 END,
       CASE WHEN g %% 3 = 0 THEN 'pass' ELSE 'none' END, CASE WHEN g %% 3 = 0 THEN 'pass' ELSE 'none' END
FROM generate_series(1, %(count)s::bigint) AS g,
LATERAL (SELECT
    now() - make_interval(secs => g::float8 * %(span)s::float8 / %(count)s::int) AS at,
    'sender' || (g * 31 %% 5000) || '@customer' || (g %% 97) || '.example' AS sender,
    CASE WHEN g %% 10 = 0 THEN 'support+' || (g / 10 %% 500) || '@shop' || (g %% 3) || '.example'
         ELSE %(forward)s::text END AS rcpt,
    CASE WHEN g %% 100 < 90 THEN '201' WHEN g %% 100 < 94 THEN '404' WHEN g %% 100 < 96 THEN '500'
         WHEN g %% 100 < 97 THEN 'rejected_size' WHEN g %% 100 < 98 THEN 'client_timeout'
         WHEN g %% 100 < 99 THEN '422' ELSE 'unreachable' END AS status
) AS r
"""

_OUTBOUND = """
INSERT INTO outbound_messages (
    id, resource_id, created_at, source, sender, sender_domain, "to", cc, subject,
    message_id_header, tags, priority, test_mode, size, raw)
SELECT gen_random_uuid(), %(resource_id)s::text,
       now() - make_interval(secs => g::float8 * %(span)s::float8 / %(count)s::int), 'api',
       'Shop <orders@shop.example>', 'shop.example', ARRAY['customer' || g || '@example.net'],
       '{}', 'Your order ' || g || ' shipped', '<' || g || '.' || %(resource_id)s::text || '@shop.example>',
       ARRAY['orders'], 'standard', false, 1200,
       convert_to('From: orders@shop.example' || chr(13) || chr(10) || chr(13) || chr(10) || 'x', 'UTF8')
FROM generate_series(1, %(count)s::int) AS g
"""

_RECIPIENTS = """
INSERT INTO outbound_recipients (
    message_id, resource_id, address, domain, state, priority_rank, attempts, next_attempt_at,
    last_reply, updated_at)
SELECT m.id, m.resource_id, m."to"[1], 'example.net', s.state, 1,
       CASE WHEN s.state = 'delivered' THEN 1 ELSE 3 END,
       CASE WHEN s.state = 'deferred' THEN now() + interval '10 minutes' END,
       CASE s.state WHEN 'delivered' THEN '250 2.0.0 Ok: queued as ' || left(m.id::text, 8)
            WHEN 'bounced' THEN '550 5.1.1 No such user' ELSE '451 4.7.1 Try again later' END,
       m.created_at + interval '4 seconds'
FROM outbound_messages m,
LATERAL (SELECT CASE WHEN h < 90 THEN 'delivered' WHEN h < 95 THEN 'bounced'
                     WHEN h < 98 THEN 'deferred' ELSE 'retries_exhausted' END AS state
         FROM (SELECT abs(hashtext(m.id::text)) %% 100 AS h) AS x) AS s
WHERE m.resource_id = %(resource_id)s::text
"""

_EVENTS = """
INSERT INTO outbound_events (recipient_id, at, state, reply, mx, webhook_pending)
SELECT id, updated_at - interval '4 seconds', 'queued', NULL, NULL, false
FROM outbound_recipients WHERE resource_id = %(resource_id)s::text
UNION ALL
SELECT id, updated_at, state, last_reply, 'mx.example.net', false
FROM outbound_recipients WHERE resource_id = %(resource_id)s::text
"""


def without_search_indexes(database_url: str) -> list[str]:
    """Drop the history's GIN (trigram) indexes before a bulk load, as one would for any large
    load (built once afterwards, they take a fraction of the time inserting into them row by row
    takes); the statements that create them again, from the database's own definitions."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        found = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'inbound_messages' "
            "AND indexdef LIKE '%USING gin%'").fetchall()
        for name, _ in found:
            conn.execute(f'DROP INDEX "{name}"')
    return [definition for _, definition in found]


def create_again(database_url: str, definitions: list[str]) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        for definition in definitions:
            conn.execute(definition)


def load_history(database_url: str, resource_id: str, *, inbound: int, outbound: int) -> None:
    """`inbound` history rows and `outbound` sent messages for the resource (its first address)."""
    span = DAYS * 86400
    with psycopg.connect(database_url, autocommit=True) as conn:
        address_id, local_id = conn.execute(
            "SELECT id, local_id FROM addresses WHERE resource_id = %s ORDER BY id LIMIT 1", (resource_id,)
        ).fetchone() or (None, "box")
        values = {"resource_id": resource_id, "address_id": address_id, "span": span,
                  "forward": f"{local_id}@cloudmailin.test"}
        if inbound:
            conn.execute(_INBOUND, {**values, "count": inbound, "customers": CUSTOMERS})
        if outbound:
            conn.execute(_OUTBOUND, {**values, "count": outbound})
            conn.execute(_RECIPIENTS, values)
            conn.execute(_EVENTS, values)


def analyze(database_url: str) -> None:
    """Fresh statistics and visibility map, as autovacuum would leave them after a bulk load."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        for table in ("inbound_messages", "outbound_messages", "outbound_recipients", "outbound_events"):
            conn.execute(f"VACUUM (ANALYZE) {table}")
