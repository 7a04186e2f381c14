"""The GPU deployment's files as tests read them: the Dockerfile, docker-compose.yml,
deploy/compose-scale.yml, pyproject.

The Dockerfile is parsed into its instructions; the command the container runs and its health
check are read from either source (`SOURCES`: the Dockerfile's CMD/HEALTHCHECK, or compose's
`command`/`healthcheck`, interpolated as Compose does), and the config that command names is
loaded with the real CLI. The commands of vLLM replicas and routers are parsed by vLLM's and
vllm-router's own argument parsers.
"""

import argparse
import importlib
import json
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Mapping, Sequence
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
COMPOSE_SCALE = REPO / "deploy" / "compose-scale.yml"
DOCKERIGNORE = REPO / ".dockerignore"
SERVICE = "workers-ai-local"
HEALTH_PATH = "/health"
# docker-compose.yml's profile: the name of a configs/*.yaml file.
PROFILE_VARIABLE = "WORKERS_AI_LOCAL_PROFILE"


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
def compose(path: Path = COMPOSE) -> dict[str, Any]:
    """A compose file with its YAML anchors and merge keys resolved (not yet interpolated)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def service(name: str = SERVICE, path: Path = COMPOSE) -> dict[str, Any]:
    found = compose(path)["services"][name]
    assert isinstance(found, dict)
    return found


_VARIABLE = re.compile(r"\$(?:\$|\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})")


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """`value` as Compose interpolates it from `env`: `${VAR}`, `${VAR:-default}` (also when
    empty), `${VAR-default}` (only when unset), `${VAR:?message}` and `${VAR?message}` (compose
    stops: raised here), and `$$` for a literal `$`."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op") or "", match.group("arg") or ""
        value = env.get(name)
        missing = value is None or (op.startswith(":") and value == "")
        if op.endswith("-"):
            return arg if missing else str(value)
        if op.endswith("?") and missing:
            raise ValueError(f"compose refuses to start: {name}: {arg}")
        return value or ""

    return _VARIABLE.sub(replace, value)


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


def command(found: dict[str, Any], env: Mapping[str, str] | None = None) -> list[str]:
    """A compose service's `command` as the container gets it, interpolated from `env`
    (default: nothing set, so every default applies)."""
    raw = found["command"]
    args = shlex.split(raw) if isinstance(raw, str) else [str(arg) for arg in raw]
    return [interpolate(arg, env or {}) for arg in args]


def serve_command(source: str, env: Mapping[str, str] | None = None) -> list[str]:
    if source == "dockerfile":
        return dockerfile().exec_form("CMD")
    if "command" not in service():  # compose falls back to the image's CMD
        return dockerfile().exec_form("CMD")
    return command(service(), env)


def served_port(source: str) -> int:
    port: int = build_parser().parse_args(serve_command(source)).port
    return port


def config_path(argv: Sequence[str]) -> Path:
    """The file in this repository that a `serve` command's `--config` names in the image."""
    args = build_parser().parse_args(list(argv))
    return repo_path(dockerfile().workdir() / args.config)


def command_settings(source: str, env: Mapping[str, str] | None = None) -> Settings:
    """The settings the container's command loads (its `--config`, as the image has it)."""
    return load_settings(config_path(serve_command(source, env)))


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


# --- vLLM replicas and routers, parsed by their own CLIs -----------------------------------------


@cache
def _vllm_serve_parser() -> argparse.ArgumentParser:
    from vllm.entrypoints.launchers.cli_args import make_arg_parser
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser: argparse.ArgumentParser = make_arg_parser(FlexibleArgumentParser(prog="vllm serve"))
    return parser


def vllm_serve_args(argv: Sequence[str]) -> argparse.Namespace:
    """`vllm serve ARGV` as the pinned vLLM parses and checks it before loading anything: an
    unknown flag or a bad value fails here. The model is `model_tag`."""
    from vllm.entrypoints.launchers.cli_args import validate_parsed_serve_args

    try:
        args = _vllm_serve_parser().parse_args(list(argv))
    except SystemExit:
        pytest.fail(f"vllm serve refuses: {shlex.join(argv)} (its message is above)")
    validate_parsed_serve_args(args)
    return args


def vllm_router_args(argv: Sequence[str]) -> Any:
    """`vllm-router ARGV` as the installed vllm-router's launcher parses and checks it
    (a `RouterArgs`)."""
    launcher = importlib.import_module("vllm_router.launch_router")
    try:
        args = launcher.parse_router_args(list(argv))
    except SystemExit:
        pytest.fail(f"vllm-router refuses: {shlex.join(argv)} (its message is above)")
    args._validate_router_args()
    return args
