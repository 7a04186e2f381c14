"""Log lines: text for people, JSON for log shippers; each names the request it was written for.

    text  2025-01-01 12:00:00,123 INFO workers_ai_local.access [3f1c...]: POST /... 200 ...
    json  {"time": "2025-01-01T12:00:00.123+00:00", "level": "INFO", "logger": "...",
           "message": "...", "request_id": "3f1c...", <the access fields on access lines>}

Lines written outside a request carry the id `-`. Only the command line configures logging
(`configure_logging`); the rest of the server only logs.
"""

import json
import logging
from datetime import UTC, datetime
from typing import Any, Literal

from server.request_context import current_request_id

LogFormat = Literal["text", "json"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"


class RequestIdFilter(logging.Filter):
    """Stamps each record with the id of the request being served when it was logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line; the access log's fields (`extra={"access": ...}`) at top level."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or current_request_id(),
        }
        access = getattr(record, "access", None)
        if isinstance(access, dict):
            line.update(access)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        # default=str: an odd `extra` value must not cost the line.
        return json.dumps(line, default=str)


def configure_logging(level: str, log_format: LogFormat) -> None:
    """Send every logger's lines to stderr in `log_format`, replacing any earlier set-up."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    formatter = JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(formatter)
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # uvicorn's own logging set-up (run before, in this process) stops its lines at the
    # `uvicorn` logger; send them through the handler above instead.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.setLevel(logging.NOTSET)  # the level asked for here applies
        uvicorn_logger.propagate = True
    # httpx writes a line for every call to a remote engine at INFO ("HTTP Request: POST ...");
    # each request's access line already tells how it went. Those lines show at DEBUG.
    httpx_level = logging.DEBUG if level.upper() == "DEBUG" else logging.WARNING
    logging.getLogger("httpx").setLevel(httpx_level)
