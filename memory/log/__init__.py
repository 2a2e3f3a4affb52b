"""State logs: the transactional record of every change (the source of truth)."""

from hivemem.memory.log.base import PendingChange, Row, StateLog, WriteView

__all__ = ["PendingChange", "Row", "StateLog", "WriteView", "open_log"]


def open_log(url: str, **options: object) -> StateLog:
    """Open a log by URL: ``sqlite:///path/to/file.db`` or
    ``postgresql://user@host/db?schema=hivemem``."""
    if url.startswith("sqlite://"):
        from hivemem.memory.log.sqlite import SQLiteLog

        return SQLiteLog(url[len("sqlite://") :], **options)  # type: ignore[arg-type]
    if url.startswith(("postgresql://", "postgres://")):
        from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

        from hivemem.memory.log.postgres import PostgresLog

        # ?schema=NAME picks the schema (several stores may share one database)
        parts = urlsplit(url)
        query = parse_qsl(parts.query)
        schema = [v for k, v in query if k == "schema"]
        if schema:
            options["schema"] = schema[-1]
            url = urlunsplit(
                parts._replace(query=urlencode([(k, v) for k, v in query if k != "schema"]))
            )
        return PostgresLog(url, **options)  # type: ignore[arg-type]
    from hivemem.memory.errors import InvalidInput

    raise InvalidInput("log_url", f"unknown scheme in {url!r}")
