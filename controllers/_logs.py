"""Structured log lines: `key=value` text or JSON lines, one logger per module.

What this module is for: the runner's logs (issue 7 item 4). Library modules log through
`logging.getLogger(__name__)`-style loggers and attach fields with `fields(...)`::

    log.info("app served", extra=fields(app="lab", port=9001))

`configure_logging` (called by the CLI, never on import: embedders keep their own logging)
installs one handler on the `rxkube` logger that renders every record as

    time=2024-05-01T12:00:00.123Z level=info logger=rxkube.controllers.runner \
        msg="app served" app=lab port=9001

or, with `format="json"`, as one JSON object per line with the same keys. Records of other
loggers are left alone. No clock of its own: the record's `created` time is the one stamped.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final, Literal, TextIO

import orjson

__all__ = ["LogFormat", "configure_logging", "fields"]

LogFormat = Literal["text", "json"]

_FIELDS: Final = "rxkube_fields"
_HANDLER: Final = "rxkube-structured"


def fields(**values: object) -> dict[str, object]:
    """`extra=` for a log call: these key-value pairs become fields of the line."""
    return {_FIELDS: values}


def _text(value: object) -> str:
    text = value if isinstance(value, str) else str(value)
    if text and not any(c in text for c in ' "=\n\t\\') and text.isprintable():
        return text
    return orjson.dumps(text).decode()


class StructuredFormatter(logging.Formatter):
    """Renders a record as `key=value` pairs or as a JSON object."""

    def __init__(self, format: LogFormat = "text") -> None:
        super().__init__()
        self.format_name = format

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC)
        line: dict[str, object] = {
            "time": stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        extra = getattr(record, _FIELDS, None)
        if isinstance(extra, Mapping):
            for key, value in extra.items():
                line.setdefault(str(key), value)
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        if self.format_name == "json":
            return orjson.dumps(line, default=str).decode()
        return " ".join(f"{key}={_text(value)}" for key, value in line.items())


def configure_logging(
    *,
    format: LogFormat = "text",
    level: int | str = logging.INFO,
    stream: TextIO | None = None,
) -> logging.Handler:
    """Send rxkube's logs to `stream` (stderr) as structured lines; returns the handler.

    Calling it again replaces the handler it installed before (not anybody else's).
    """
    logger = logging.getLogger("rxkube")
    for handler in list(logger.handlers):
        if handler.get_name() == _HANDLER:
            logger.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER)
    handler.setFormatter(StructuredFormatter(format))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return handler
