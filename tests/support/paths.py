"""Where the repository and its neighbours are, for tests that read files."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"
# The official chat templates, verbatim (`../shared` beside the repository).
OFFICIAL_TEMPLATES = REPO.parent / "shared" / "reference" / "chat_templates"
