"""The environment wrangler runs in: the fake Cloudflare, the run's CA, no calls home."""

from pathlib import Path

from server.wrangler_dev.cloudflare_api import ACCOUNT_ID, PreviewSession
from server.wrangler_dev.environment import ca_bundle, child_environment

DEVELOPERS = {
    "PATH": "/usr/bin",
    "CLOUDFLARE_API_TOKEN": "the-developers-real-token",
    "CLOUDFLARE_API_KEY": "global-key",
    "CLOUDFLARE_EMAIL": "dev@example.com",
    "CLOUDFLARE_ACCOUNT_ID": "their-account",
}


def test_wrangler_talks_to_the_edge_with_the_runs_secrets_only(tmp_path: Path) -> None:
    session = PreviewSession()

    env = child_environment(DEVELOPERS, session, tmp_path / "ca.pem")

    assert env["CLOUDFLARE_API_BASE_URL"] == "https://127.0.0.1/client/v4"
    assert env["CLOUDFLARE_API_TOKEN"] == session.api_token
    assert env["CLOUDFLARE_ACCOUNT_ID"] == ACCOUNT_ID
    assert env["NODE_EXTRA_CA_CERTS"] == str(tmp_path / "ca.pem")
    assert "CLOUDFLARE_API_KEY" not in env
    assert "CLOUDFLARE_EMAIL" not in env
    assert env["PATH"] == "/usr/bin"


def test_wranglers_other_outbound_calls_are_switched_off(tmp_path: Path) -> None:
    env = child_environment({}, PreviewSession(), tmp_path / "ca.pem")

    assert env["CLOUDFLARE_CF_FETCH_ENABLED"] == "false"
    assert env["WRANGLER_SEND_METRICS"] == "false"
    assert env["WRANGLER_SEND_ERROR_REPORTS"] == "false"
    assert env["WRANGLER_HIDE_BANNER"] == "true"


def test_the_developers_own_extra_cas_are_kept_beside_ours(tmp_path: Path) -> None:
    ours = tmp_path / "ours.pem"
    ours.write_text("OURS\n")
    theirs = tmp_path / "theirs.pem"
    theirs.write_text("THEIRS")

    bundle = ca_bundle({"NODE_EXTRA_CA_CERTS": str(theirs)}, ours, tmp_path)

    assert bundle.read_text() == "THEIRS\nOURS\n"


def test_without_extra_cas_ours_is_used_as_it_is(tmp_path: Path) -> None:
    ours = tmp_path / "ours.pem"

    assert ca_bundle({}, ours, tmp_path) == ours
    assert ca_bundle({"NODE_EXTRA_CA_CERTS": str(tmp_path / "missing.pem")}, ours, tmp_path) == ours
