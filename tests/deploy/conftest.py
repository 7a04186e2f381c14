import pytest


@pytest.fixture(autouse=True)
def _no_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    """Load the profiles as they are written, whatever the developer's shell exports."""
    for name in (
        "HOST",
        "PORT",
        "API_TOKENS",
        "ACCOUNT_IDS",
        "REQUEST_TIMEOUT_S",
        "CACHE_DIR",
        "DRAIN_TIMEOUT_S",
        "ADAPTERS_DIR",
        "LOG_FORMAT",
    ):
        monkeypatch.delenv(f"WORKERS_AI_LOCAL_{name}", raising=False)
