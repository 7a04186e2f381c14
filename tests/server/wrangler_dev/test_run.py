"""`wrangler-dev` end to end with a stand-in for wrangler that makes wrangler's calls.

The stand-in (a Python script) answers `--version`, and for `dev` makes the calls wrangler 4.86
makes, over TLS with the CA it is given: the API's three, then `env.AI.run` at the edge. The
edge forwards it to the real app on the scripted engines. The real wrangler runs in
tests/integration/test_wrangler_dev.py.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from server.wrangler_dev.listener import HOST, open_socket
from server.wrangler_dev.run import run_wrangler_dev
from tests.support.app import QWQ, TOKEN
from tests.support.paths import REPO

STAND_IN = textwrap.dedent(
    """\
    import json, os, sys, httpx
    if sys.argv[1:] == ["--version"]:
        print(os.environ.get("FAKE_VERSION", "4.86.0"))
        sys.exit(0)
    assert sys.argv[1:4] == ["dev", "--name", "127"], sys.argv
    if os.environ.get("FAKE_MODE") == "sleep":
        open(os.environ["FAKE_OUT"], "w").write("started")
        import time; time.sleep(60)
    api = os.environ["CLOUDFLARE_API_BASE_URL"]
    account = os.environ["CLOUDFLARE_ACCOUNT_ID"]
    auth = {"Authorization": "Bearer " + os.environ["CLOUDFLARE_API_TOKEN"]}
    with httpx.Client(verify=os.environ["NODE_EXTRA_CA_CERTS"], trust_env=False) as cf:
        cf.get(f"{api}/accounts/{account}/workers/subdomain/edge-preview", headers=auth)
        subdomain = cf.get(f"{api}/accounts/{account}/workers/subdomain", headers=auth)
        host = "127." + subdomain.json()["result"]["subdomain"]
        metadata = {"bindings": [{"name": "AI", "type": "ai", "raw": True}]}
        upload = cf.post(
            f"{api}/accounts/{account}/workers/scripts/127/edge-preview",
            headers=auth,
            files={"metadata": (None, json.dumps(metadata))},
        )
        edge = "https://" + host.split("/")[0] + ":" + api.split(":")[2].split("/")[0]
        answer = cf.post(
            edge + "/",
            headers={
                "MF-Binding": "AI",
                "MF-URL": "https://workers-binding.ai/run?version=3",
                "MF-Header-cf-consn-model-id": os.environ["FAKE_MODEL"],
                "cf-workers-preview-token": upload.json()["result"]["preview_token"],
            },
            content=json.dumps({"inputs": {"prompt": "Hi"}, "options": {}}),
        )
    open(os.environ["FAKE_OUT"], "w").write(answer.text)
    sys.exit(int(os.environ.get("FAKE_EXIT", "0")))
    """
)


@pytest.fixture
def stand_in(tmp_path: Path) -> Path:
    path = tmp_path / "wrangler"
    path.write_text(f"#!{sys.executable}\n{STAND_IN}")
    path.chmod(0o755)
    return path


@pytest.fixture
def free_port() -> int:
    with open_socket(HOST, 0) as probe:
        port: int = probe.getsockname()[1]
        return port


def environ(tmp_path: Path, **fake: str) -> dict[str, str]:
    values = {"FAKE_OUT": str(tmp_path / "out"), "FAKE_MODEL": QWQ, **fake}
    return {**os.environ, "WORKERS_AI_LOCAL_CACHE_DIR": str(tmp_path / "cache"), **values}


def test_wrangler_reaches_the_server_through_the_edge_and_its_status_is_ours(
    server_url: str, stand_in: Path, tmp_path: Path, free_port: int
) -> None:
    status = run_wrangler_dev(
        server_url,
        TOKEN,
        ["--", str(stand_in), "dev"],
        environ(tmp_path, FAKE_EXIT="7"),
        port=free_port,
    )

    assert status == 7
    assert json.loads((tmp_path / "out").read_text())["response"] == "Hello, world."
    assert (tmp_path / "cache" / "wrangler-dev" / "ca.pem").exists()


def test_an_unsupported_wrangler_is_refused_before_it_runs(
    server_url: str,
    stand_in: Path,
    tmp_path: Path,
    free_port: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = run_wrangler_dev(
        server_url, TOKEN, [str(stand_in), "dev"], environ(tmp_path, FAKE_VERSION="4.99.0"),
        port=free_port,
    )  # fmt: skip

    assert status == 2
    assert "wrangler 4.99.0 is not supported" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_taken_port_is_refused_before_anything_runs(
    stand_in: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with open_socket(HOST, 0) as taken:
        status = run_wrangler_dev(
            "http://127.0.0.1:9", None, [str(stand_in), "dev"], environ(tmp_path),
            port=taken.getsockname()[1],
        )  # fmt: skip

    assert status == 2
    assert "is taken by another program" in capsys.readouterr().err


RUN_IN_A_PROCESS = """
import os, sys
from server.wrangler_dev.run import run_wrangler_dev
sys.exit(run_wrangler_dev("http://127.0.0.1:9", None, sys.argv[2:], os.environ, int(sys.argv[1])))
"""


def test_sigterm_is_passed_on_to_the_command_whose_end_is_reported_as_a_shell_does(
    stand_in: Path, tmp_path: Path, free_port: int
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", RUN_IN_A_PROCESS, str(free_port), str(stand_in), "dev"],
        cwd=REPO,
        env=environ(tmp_path, FAKE_MODE="sleep"),
        stderr=subprocess.PIPE,
    )
    try:
        out = tmp_path / "out"
        for _ in range(600):
            if out.exists() or process.poll() is not None:
                break
            time.sleep(0.1)
        assert out.read_text() == "started"

        process.send_signal(signal.SIGTERM)

        assert process.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stderr is not None
        process.stderr.close()


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        pytest.param(["--", "npm", "run", "dev"], "does not run wrangler itself", id="script"),
        pytest.param([], "give the command that runs `wrangler dev`", id="no-command"),
    ],
)
def test_the_command_line_refuses_with_status_2(arguments: list[str], says: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", "wrangler-dev", *arguments],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 2
    assert done.stderr.startswith("workers-ai-local wrangler-dev: ")
    assert says in done.stderr
