"""The GPU deployment's files as tests read them: the Dockerfile, docker-compose.yml, pyproject.

The Dockerfile is parsed into its instructions; the command the container runs and its health
check are read from either source (`SOURCES`: the Dockerfile's CMD/HEALTHCHECK, or compose's
`command`/`healthcheck`), and the config that command names is loaded with the real CLI.
"""

import json
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from server.cli import build_parser
from server.settings import Settings, load_settings
from tests.support.paths import REPO

DOCKERFILE = REPO / "Dockerfile"
COMPOSE = REPO / "docker-compose.yml"
DOCKERIGNORE = REPO / ".dockerignore"
SERVICE = "workers-ai-local"
HEALTH_PATH = "/health"


# --- Reading the Dockerfile ---------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


@dataclass(frozen=True)
class Copy:
    sources: tuple[str, ...]
    destination: PurePosixPath


@dataclass(frozen=True)
class Dockerfile:
    instructions: tuple[Instruction, ...]

    @classmethod
    def parse(cls, text: str) -> "Dockerfile":
        instructions: list[Instruction] = []
        pending = ""
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            keyword, _, arguments = (pending + line).partition(" ")
            instructions.append(Instruction(keyword.upper(), arguments.strip()))
            pending = ""
        return cls(tuple(instructions))

    def all(self, keyword: str) -> list[str]:
        return [item.arguments for item in self.instructions if item.keyword == keyword]

    def last(self, keyword: str) -> str:
        """The instruction that takes effect (Docker keeps the last ENTRYPOINT, CMD, ...)."""
        found = self.all(keyword)
        assert found, f"the Dockerfile has no {keyword}"
        return found[-1]

    def exec_form(self, keyword: str) -> list[str]:
        value = json.loads(self.last(keyword))
        assert isinstance(value, list), f"{keyword} is not in JSON (exec) form"
        return [str(item) for item in value]

    def env(self) -> dict[str, str]:
        variables: dict[str, str] = {}
        for arguments in self.all("ENV"):
            for pair in shlex.split(arguments):
                name, _, value = pair.partition("=")
                variables[name] = value
        return variables

    def copies(self) -> list[Copy]:
        workdir = PurePosixPath("/")
        found: list[Copy] = []
        for item in self.instructions:
            if item.keyword == "WORKDIR":
                workdir = workdir / item.arguments
            elif item.keyword == "COPY":
                *sources, destination = shlex.split(item.arguments)
                assert not any(s.startswith("--") for s in sources), "COPY flags are not handled"
                found.append(Copy(tuple(sources), workdir / destination))
        return found

    def workdir(self) -> PurePosixPath:
        return PurePosixPath(self.last("WORKDIR"))

    def healthcheck(self) -> tuple[dict[str, str], list[str]]:
        """The HEALTHCHECK options and its exec-form command."""
        options_text, separator, command = self.last("HEALTHCHECK").partition(" CMD ")
        assert separator, "HEALTHCHECK has no CMD"
        options = dict(option.removeprefix("--").split("=", 1) for option in options_text.split())
        value = json.loads(command)
        assert isinstance(value, list), "HEALTHCHECK CMD is not in JSON (exec) form"
        return options, [str(item) for item in value]


@cache
def dockerfile() -> Dockerfile:
    return Dockerfile.parse(DOCKERFILE.read_text(encoding="utf-8"))


@cache
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def service() -> dict[str, Any]:
    found = compose()["services"][SERVICE]
    assert isinstance(found, dict)
    return found


@cache
def pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def repo_path(image_path: PurePosixPath) -> Path:
    """The file in this repository that the image has at `image_path`."""
    for copy in dockerfile().copies():
        for source in copy.sources:
            if (REPO / source).is_dir():
                if image_path.is_relative_to(copy.destination):
                    return REPO / source / image_path.relative_to(copy.destination)
            elif image_path == copy.destination / PurePosixPath(source).name:
                return REPO / source
    raise AssertionError(f"{image_path} is not copied into the image")


def pip_installs() -> list[list[str]]:
    """The arguments of every `pip install` in the Dockerfile's RUN instructions."""
    found: list[list[str]] = []
    for run in dockerfile().all("RUN"):
        lexer = shlex.shlex(run, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        step: list[str] = []
        for token in [*lexer, ";"]:
            if token not in ("&&", "||", ";", "|"):
                step.append(token)
                continue
            found.extend(
                step[index + 2 :]
                for index in range(len(step) - 1)
                if step[index : index + 2] == ["pip", "install"]
            )
            step = []
    return found


# --- The command the container runs: the Dockerfile's CMD, or compose's `command` ----------------

SOURCES = ["dockerfile", "compose"]


def serve_command(source: str) -> list[str]:
    if source == "dockerfile":
        return dockerfile().exec_form("CMD")
    command = service().get("command")
    if command is None:  # compose falls back to the image's CMD
        return dockerfile().exec_form("CMD")
    return shlex.split(command) if isinstance(command, str) else [str(arg) for arg in command]


def served_port(source: str) -> int:
    port: int = build_parser().parse_args(serve_command(source)).port
    return port


def command_settings(source: str) -> Settings:
    """The settings the container's command loads (its `--config`, as the image has it)."""
    args = build_parser().parse_args(serve_command(source))
    return load_settings(repo_path(dockerfile().workdir() / args.config))


def healthcheck_command(source: str) -> list[str]:
    if source == "dockerfile":
        return dockerfile().healthcheck()[1]
    test = service()["healthcheck"]["test"]
    assert isinstance(test, list), "write the compose healthcheck in list form"
    assert test[0] == "CMD"
    return [str(arg) for arg in test[1:]]


def healthcheck_start_period(source: str) -> str:
    if source == "dockerfile":
        return dockerfile().healthcheck()[0]["start-period"]
    return str(service()["healthcheck"]["start_period"])


def healthcheck_url(source: str) -> str:
    urls = re.findall(r"https?://[^\s'\"]+", " ".join(healthcheck_command(source)))
    assert len(urls) == 1, f"expected one URL in the health check, found {urls}"
    return str(urls[0])


def documented_stop_timeout() -> int:
    """The `--stop-timeout` of the `docker run` the Dockerfile's comments show."""
    found = re.findall(r"--stop-timeout[ =](\d+)", DOCKERFILE.read_text(encoding="utf-8"))
    assert len(found) == 1, f"expected one --stop-timeout in the Dockerfile, found {found}"
    return int(found[0])


def seconds(duration: str) -> int:
    """A Docker duration such as 1800s, 30m or 1h30m."""
    assert duration, "empty duration"
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert parts, f"cannot read the duration {duration!r}"
    hours, minutes, secs = (int(part or 0) for part in parts.groups())
    return hours * 3600 + minutes * 60 + secs


# --- Linters ------------------------------------------------------------------------------------


def run_tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a linter installed beside this Python (the dev extra), in the repository."""
    executable = Path(sys.executable).parent / name
    if not executable.exists():
        pytest.fail(f"{name} is not installed next to {sys.executable}: pip install -e '.[dev]'")
    return subprocess.run(
        [str(executable), *args], cwd=REPO, capture_output=True, text=True, timeout=120
    )
