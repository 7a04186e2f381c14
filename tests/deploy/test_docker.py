"""The Dockerfile, checked without Docker: linted, its base image and installs matched to the
project, its copies matched to the repository and the .dockerignore."""

import re
from fnmatch import fnmatch

import pytest

from tests.support.deploy import (
    DOCKERFILE,
    DOCKERIGNORE,
    dockerfile,
    pip_installs,
    pyproject,
    run_tool,
)
from tests.support.paths import REPO


def test_dockerfile_passes_hadolint() -> None:
    result = run_tool("hadolint", "--no-color", DOCKERFILE.name)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_base_image_is_the_vllm_release_the_gpu_extra_pins() -> None:
    (pin,) = [
        dep for dep in pyproject()["project"]["optional-dependencies"]["gpu"] if "vllm" in dep
    ]
    version = pin.removeprefix("vllm==")
    assert dockerfile().last("FROM") == f"vllm/vllm-openai:v{version}"


def test_image_installs_the_project_without_extras() -> None:
    assert [args[-1] for args in pip_installs()] == ["."]


def test_image_installs_no_engine_package_over_the_base() -> None:
    # `.[gpu]` would be vllm again; torch and vllm of any build come from the base image only.
    packages = [arg for args in pip_installs() for arg in args if not arg.startswith("-")]
    assert [arg for arg in packages if "[" in arg or re.match(r"vllm|torch", arg)] == []


def test_copied_sources_exist() -> None:
    missing = [
        source
        for copy in dockerfile().copies()
        for source in copy.sources
        if not (REPO / source).exists()
    ]
    assert missing == []


def test_copied_sources_are_not_dockerignored() -> None:
    patterns = [
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith(("#", "!"))
    ]
    ignored = [
        (source, pattern)
        for copy in dockerfile().copies()
        for source in copy.sources
        for pattern in patterns
        if fnmatch(source.rstrip("/"), pattern)
    ]
    assert ignored == []


@pytest.mark.parametrize("path", [".git", ".venv", "tests", ".env", ".mypy_cache"])
def test_local_state_is_dockerignored(path: str) -> None:
    patterns = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    assert path in patterns


def test_entrypoint_is_the_project_console_script() -> None:
    scripts = pyproject()["project"]["scripts"]
    assert scripts == {"workers-ai-local": "server.cli:main"}
    assert dockerfile().exec_form("ENTRYPOINT") == ["workers-ai-local"]
