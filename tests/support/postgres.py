"""Throw-away PostgreSQL databases on the local server that `make setup` starts."""

import os
import uuid

import psycopg

ADMIN_URL = os.environ.get(
    "SANDBAY_TEST_PG_URL", "postgresql://sandbay:sandbay@127.0.0.1:5432/postgres"
)


def create_database() -> str:
    name = f"sandbay_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
