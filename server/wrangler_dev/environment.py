"""The environment of the developer's command: wrangler talks to the fake Cloudflare only.

    CLOUDFLARE_API_BASE_URL      https://127.0.0.1/client/v4, the edge's listener serves both
    CLOUDFLARE_API_TOKEN         this run's secret (the real one, if set, never leaves)
    CLOUDFLARE_ACCOUNT_ID        any 32 hex digits; spares the /memberships call
    NODE_EXTRA_CA_CERTS          the run's CA (with the developer's own CAs, if they set some):
                                 Miniflare hands it to workerd, which checks the edge's cert
    CLOUDFLARE_CF_FETCH_ENABLED  false: no fetch of workers.cloudflare.com/cf.json
    WRANGLER_SEND_METRICS        false: no usage metrics to Cloudflare
    WRANGLER_SEND_ERROR_REPORTS  false: no crash reports to Sentry
    WRANGLER_HIDE_BANNER         true: the banner is what asks the npm registry for updates

CLOUDFLARE_API_KEY and CLOUDFLARE_EMAIL are removed: a global API key would win over the token.
"""

from collections.abc import Mapping
from pathlib import Path

from server.wrangler_dev.cloudflare_api import ACCOUNT_ID, API_PREFIX, PreviewSession

EDGE_URL = "https://127.0.0.1"
REMOVED = ("CLOUDFLARE_API_KEY", "CLOUDFLARE_EMAIL")
QUIET = {
    "CLOUDFLARE_CF_FETCH_ENABLED": "false",
    "WRANGLER_SEND_METRICS": "false",
    "WRANGLER_SEND_ERROR_REPORTS": "false",
    "WRANGLER_HIDE_BANNER": "true",
}


def child_environment(
    environ: Mapping[str, str], session: PreviewSession, ca: Path, edge_url: str = EDGE_URL
) -> dict[str, str]:
    env = {name: value for name, value in environ.items() if name not in REMOVED}
    env.update(QUIET)
    env["CLOUDFLARE_API_BASE_URL"] = edge_url + API_PREFIX
    env["CLOUDFLARE_API_TOKEN"] = session.api_token
    env["CLOUDFLARE_ACCOUNT_ID"] = ACCOUNT_ID
    env["NODE_EXTRA_CA_CERTS"] = str(ca)
    return env


def ca_bundle(environ: Mapping[str, str], ours: Path, folder: Path) -> Path:
    """Our CA, plus the developer's NODE_EXTRA_CA_CERTS if they set one (a corporate proxy's
    CA, say): the variable names one file, so both go into `folder`/ca-bundle.pem."""
    theirs = environ.get("NODE_EXTRA_CA_CERTS")
    if not theirs:
        return ours
    try:
        their_text = Path(theirs).read_text(encoding="utf-8")
    except OSError:
        return ours  # node would ignore it too, with a warning
    bundle = folder / "ca-bundle.pem"
    bundle.write_text(their_text.rstrip("\n") + "\n" + ours.read_text(encoding="utf-8"))
    return bundle
