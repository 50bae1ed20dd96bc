"""aiohttp's own server logger, with client errors kept out of the error log.

aiohttp logs a request it cannot parse (bad header bytes, a malformed request line) with
``logger.exception``: a full traceback at ERROR level that anyone can trigger at will, so
the error log could be flooded. Such requests are the client's fault: they are logged
on one line at INFO; everything else passes through unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

_AIOHTTP_SERVER = logging.getLogger("aiohttp.server")


class ServerLog(logging.LoggerAdapter[logging.Logger]):
    """The ``logger`` given to aiohttp's request handlers (see ``runner_options``)."""

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        """Pass messages through unchanged."""
        return msg, kwargs

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        """Log a client's unparsable request at INFO without a traceback; others as errors."""
        if isinstance(exc_info, HttpProcessingError):
            reason = str(exc_info.message).splitlines()[0] if exc_info.message else ""
            text = str(msg) % args if args else str(msg)
            self.logger.info("%s: %d %s", text, exc_info.code, reason)
            return
        self.logger.exception(msg, *args, exc_info=exc_info, **kwargs)


def server_log() -> ServerLog:
    """The adapter over ``aiohttp.server``."""
    return ServerLog(_AIOHTTP_SERVER, {})
