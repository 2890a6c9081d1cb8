"""Logging: one JSON object per line with Elastic Common Schema names, or text for a terminal.

Every record carries `trace.id` from the current request. Lines go to stdout and,
when `LOG_FILE` is set, to a file opened with O_APPEND and written with one
`write()` per line, so several gunicorn workers can share the file without
interleaving. The access line (`log_request`) is written once per request.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter
from pythonjsonlogger.json import JsonFormatter

from api.observability.tracing import current_trace_id

ACCESS_LOGGER = "modelgate.access"
LINES_DROPPED = Counter(
    "log_lines_dropped",
    "Log lines the app could not write to LOG_FILE (disk full, file unwritable).",
)


class TraceIdFilter(logging.Filter):
    """Stamp each record with the current trace id (kept if the record already has one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "trace.id", None):
            setattr(record, "trace.id", current_trace_id())
        return True


class EcsJsonFormatter(JsonFormatter):
    """Format records with ECS field names; extra fields pass through under their own names."""

    def __init__(self, service_name: str) -> None:
        super().__init__(reserved_attrs=_RESERVED, json_ensure_ascii=False)
        self.service_name = service_name

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data["@timestamp"] = (
            datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        ).replace("+00:00", "Z")
        log_data["log.level"] = record.levelname.lower()
        log_data["message"] = record.getMessage()
        log_data["service.name"] = self.service_name
        log_data["log.logger"] = record.name
        log_data["process.pid"] = record.process
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_") and value is not None:
                log_data[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            log_data["error.type"] = record.exc_info[0].__name__
            log_data["error.message"] = str(record.exc_info[1])
            log_data["error.stack_trace"] = self.formatException(record.exc_info)
        log_data.update(message_dict)


_RESERVED = {
    *logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys(),
    "message",
    "asctime",
    "taskName",
}


class TextFormatter(logging.Formatter):
    """Human-readable lines for development, with the trace id and any ECS extras."""

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(
            f"{key}={value}"
            for key, value in record.__dict__.items()
            if key not in _RESERVED and key != "trace.id" and value is not None
        )
        stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        trace = getattr(record, "trace.id", None) or "-"
        line = f"{stamp} {record.levelname:<7} [{trace}] {record.name}: {record.getMessage()}"
        if extras:
            line += f"  {extras}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class AppendFileHandler(logging.Handler):
    """Append each line with a single os.write on an O_APPEND descriptor (multi-process safe).

    The file is reopened when it was moved or deleted (logrotate), like WatchedFileHandler.
    A line that cannot be written (a full disk) is dropped and counted in
    `log_lines_dropped_total`, with one notice on stderr per stretch of failures: the
    request it belongs to is answered all the same. A line the disk cut short is ended
    by a newline before this handler's next line, so one broken line stays one line.
    """

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self._fd = -1
        self._inode: tuple[int, int] | None = None
        self._failing = False
        self._open()

    def _open(self) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        stat = os.fstat(self._fd)
        self._inode = (stat.st_dev, stat.st_ino)

    def _reopen_if_moved(self) -> None:
        try:
            stat = os.stat(self.path)
            if (stat.st_dev, stat.st_ino) == self._inode:
                return
        except FileNotFoundError:
            pass
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._open()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = (self.format(record) + "\n").encode("utf-8", "replace")
        except Exception:
            self.handleError(record)
            return
        self.acquire()
        try:
            self._write(line)
        except OSError as error:
            LINES_DROPPED.inc()
            if not self._failing:
                self._failing = True
                sys.stderr.write(
                    f"modelgate: cannot write {self.path} ({error.strerror}); log lines are "
                    "dropped and counted in log_lines_dropped_total until it can\n"
                )
        except Exception:
            self.handleError(record)
        finally:
            self.release()

    def _write(self, line: bytes) -> None:
        """One os.write of the whole line (the handler's lock held); OSError when it cannot."""
        self._reopen_if_moved()
        if self._failing:
            line = b"\n" + line  # ends a line the full disk may have cut short
        if os.write(self._fd, line) < len(line):
            raise OSError(errno.ENOSPC, "short write: the line is cut")
        self._failing = False

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        super().close()


def configure_logging(
    *, service_name: str, fmt: str, level: str, log_file: str | None, stream: Any = None
) -> None:
    """Replace the root logger's handlers with ours (idempotent: tests call it per app)."""
    formatter: logging.Formatter = (
        EcsJsonFormatter(service_name) if fmt == "json" else TextFormatter()
    )
    handlers: list[logging.Handler] = [logging.StreamHandler(stream or sys.stdout)]
    if log_file:
        handlers.append(AppendFileHandler(log_file))
    root = logging.getLogger()
    for old in root.handlers[:]:
        if getattr(old, "_modelgate", False):
            root.removeHandler(old)
            old.close()
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(TraceIdFilter())
        handler._modelgate = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    # Our access line replaces Werkzeug's; keep its warnings.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
