"""JSON logs: ECS names, one access line per request, the request's trace id on every line."""

from __future__ import annotations

import io
import json
import logging
import re

from api.observability.logs import configure_logging


def test_one_ecs_access_line_per_request(client, log_lines):
    client.get("/nope", headers={"X-Trace-Id": "abc-123", "User-Agent": "curl/8.0"})
    access = [line for line in log_lines() if line["log.logger"] == "modelgate.access"]
    assert len(access) == 1
    line = access[0]
    assert line["trace.id"] == "abc-123"
    assert line["http.request.method"] == "GET"
    assert line["url.path"] == "/nope"
    assert line["http.response.status_code"] == 404
    assert line["user_agent.original"] == "curl/8.0"
    assert line["client.ip"] == "127.0.0.1"
    assert line["service.name"] == "modelgate"
    assert line["log.level"] == "info"
    assert isinstance(line["event.duration"], int) and line["event.duration"] > 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["@timestamp"])


def test_access_line_names_the_route_template_not_the_raw_path(client, log_lines):
    client.get("/docs/assets/swagger-ui.css")
    line = [x for x in log_lines() if x["log.logger"] == "modelgate.access"][-1]
    assert line["http.route"] == "/docs/assets/<path:filename>"
    assert line["url.path"] == "/docs/assets/swagger-ui.css"


def test_text_format_for_a_terminal():
    stream = io.StringIO()
    configure_logging(
        service_name="modelgate", fmt="text", level="INFO", log_file=None, stream=stream
    )
    logging.getLogger("modelgate.test").info("hello", extra={"user.id": 7})
    output = stream.getvalue()
    assert "hello" in output and "user.id=7" in output
    assert not output.lstrip().startswith("{")


def test_exceptions_are_logged_with_ecs_error_fields():
    stream = io.StringIO()
    configure_logging(service_name="svc", fmt="json", level="INFO", log_file=None, stream=stream)
    try:
        raise ValueError("bad thing")
    except ValueError:
        logging.getLogger("x").exception("failed")
    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert line["error.type"] == "ValueError"
    assert line["error.message"] == "bad thing"
    assert "Traceback" in line["error.stack_trace"]
    assert line["service.name"] == "svc"
