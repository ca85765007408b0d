"""The store: SQLAlchemy schema, sessions, the job queue and result readers (issue 4)."""
