"""Shared dashboard pieces: URL state, store access, charts. Imports db and backend.specs only."""
