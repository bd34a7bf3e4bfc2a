"""RQ job functions. Each takes ids, loads its own settings and session (`workers.context`), is
safe to run twice, and is enqueued only after the commit that created its work."""
