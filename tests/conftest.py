"""Shared fixtures.  Tests use real parts (Redis, LevelDB, DuckDB, QUIC on 127.0.0.1); fakes only
inside unit tests of pure cores."""
