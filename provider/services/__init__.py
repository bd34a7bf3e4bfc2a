"""Framework-free domain services shared by the web process, the SMTP edge and the workers.

Each service takes a SQLAlchemy `Session` (and `Settings` where it needs configuration) so the
same code runs under Flask's request-scoped session and under the workers' plain sessions.
"""
