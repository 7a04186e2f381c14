"""Request ids and the access log on the real server: the header, and the line in its log."""

import re
import time
import uuid

import httpx

from tests.support.live import QWQ, run
from tests.support.live_server import RunningServer


def access_lines(server: RunningServer, request_id: str, timeout_s: float = 10) -> list[str]:
    """The server's access lines for `request_id`, once there is one: it is written just after
    the response is sent, so the client can be a moment ahead of it."""
    marker = f" INFO workers_ai_local.access [{request_id}]: "
    deadline = time.monotonic() + timeout_s
    while True:
        lines = [
            line for line in server.log.read_text(errors="replace").splitlines() if marker in line
        ]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


def test_a_client_id_is_echoed_and_names_one_access_line(
    api: httpx.Client, server: RunningServer
) -> None:
    request_id = f"it-{uuid.uuid4().hex}"

    response = api.post(
        f"/client/v4/accounts/acct/ai/run/{QWQ}",
        json={"prompt": "Hi", "max_tokens": 3, "temperature": 0},
        headers={"X-Request-Id": request_id},
    )
    missing = run(api, "@cf/no/such-model", prompt="Hi")

    assert response.status_code == 200, response.text
    assert response.headers["X-Request-Id"] == request_id
    assert re.fullmatch(r"[0-9a-f]{32}", missing.headers["X-Request-Id"])
    (line,) = access_lines(server, request_id)
    assert re.search(
        rf"POST /client/v4/accounts/acct/ai/run/{re.escape(QWQ)} 200 model={re.escape(QWQ)} "
        r"prompt_tokens=\d+ completion_tokens=[1-3] latency_ms=\d+\.\d$",
        line,
    )
    (error_line,) = access_lines(server, missing.headers["X-Request-Id"])
    assert " 400 model=@cf/no/such-model error_code=5007 " in error_line
