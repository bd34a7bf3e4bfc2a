"""Outbound delivery: recipients claimed from PostgreSQL (the queue of record), grouped by
destination, sent over pooled SMTP connections, and their outcomes written back as events.

The pieces: `schedule` (when a deferred recipient is tried again), `mx` (where a domain's mail
goes), `transport` (SMTP connections, reused per host), `store` (claiming and recording in
PostgreSQL), `engine` (one batch from claim to outcomes), and `worker` (the RQ worker that runs the
jobs in-process, without a fork per job).
"""
