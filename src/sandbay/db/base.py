"""Declarative base with one naming convention, so SQLite and PostgreSQL
migrations stay in lockstep, and column types both databases share."""

from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Enum, Integer, MetaData, TypeDecorator
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both databases (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def result_processor(
        self, dialect: Dialect, coltype: Any
    ) -> Callable[[Any], datetime | None] | None:
        """On SQLite, the naive UTC text read with its offset appended: one C call, where
        parsing and then `replace(tzinfo=UTC)` costs several times as much (a page of
        1,000 environments reads 7,000 timestamps). Anything else (an offset already,
        a date alone, not ISO text) takes the general path, so every value reads as
        before."""
        general = super().result_processor(dialect, coltype)
        if dialect.name != "sqlite" or general is None:
            return general
        parse = datetime.fromisoformat

        def process(value: Any) -> datetime | None:
            if value is None:
                return None
            try:
                parsed = parse(value + "+00:00")
            except (TypeError, ValueError):
                return general(value)
            # A date alone would take the offset for its time of day: naive, so general.
            return parsed if parsed.tzinfo is not None else general(value)

        return process


#: JSON everywhere, JSONB on PostgreSQL (indexable, comparable).
JSONType: Any = JSON().with_variant(JSONB(), "postgresql")

#: 64-bit autoincrement on PostgreSQL; SQLite only autoincrements INTEGER PRIMARY KEY.
BigIntPK: Any = BigInteger().with_variant(Integer(), "sqlite")


def enum_values(enum: type[StrEnum], length: int = 32) -> Enum:
    """A StrEnum stored as its values in a plain VARCHAR(`length`): no native enum
    type and no CHECK constraint, so the schema is a string column while the
    attribute reads and writes enum members (unknown strings are refused)."""
    return Enum(
        enum,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
