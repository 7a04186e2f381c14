"""The developer's command: which wrangler it runs, `--name 127`, and that wrangler's version."""

import os
import stat
from pathlib import Path

import pytest

from server.wrangler_dev.command import TESTED_VERSION, CommandError, check_version, prepare


@pytest.mark.parametrize(
    ("given", "runs", "asks"),
    [
        pytest.param(
            ["npx", "wrangler", "dev"],
            ["npx", "wrangler", "dev", "--name", "127"],
            ["npx", "wrangler", "--version"],
            id="npx",
        ),
        pytest.param(
            ["node_modules/.bin/wrangler", "dev", "src/index.ts", "--port", "8788"],
            [
                "node_modules/.bin/wrangler",
                "dev",
                "--name",
                "127",
                "src/index.ts",
                "--port",
                "8788",
            ],
            ["node_modules/.bin/wrangler", "--version"],
            id="local-bin",
        ),
        pytest.param(
            ["npx", "wrangler@4.86.0", "dev"],
            ["npx", "wrangler@4.86.0", "dev", "--name", "127"],
            ["npx", "wrangler@4.86.0", "--version"],
            id="npx-pinned",
        ),
        pytest.param(
            ["pnpm", "exec", "wrangler", "dev", "--remote=false"],
            ["pnpm", "exec", "wrangler", "dev", "--name", "127", "--remote=false"],
            ["pnpm", "exec", "wrangler", "--version"],
            id="pnpm-exec",
        ),
        pytest.param(
            ["node", "/x/wrangler/bin/wrangler.js", "dev"],
            ["node", "/x/wrangler/bin/wrangler.js", "dev", "--name", "127"],
            ["node", "/x/wrangler/bin/wrangler.js", "--version"],
            id="node-script",
        ),
    ],
)
def test_the_command_runs_as_given_with_the_worker_named_127(
    given: list[str], runs: list[str], asks: list[str]
) -> None:
    command = prepare(given)

    assert command.argv == runs
    assert command.version_argv == asks
    assert command.replaced_name is None


@pytest.mark.parametrize(
    "given",
    [
        pytest.param(["wrangler", "dev", "--name", "my-worker", "--port", "1"], id="separate"),
        pytest.param(["wrangler", "dev", "--name=my-worker", "--port", "1"], id="equals"),
    ],
)
def test_the_developers_own_name_is_replaced_and_reported(given: list[str]) -> None:
    command = prepare(given)

    assert command.argv == ["wrangler", "dev", "--name", "127", "--port", "1"]
    assert command.replaced_name == "my-worker"


@pytest.mark.parametrize(
    ("given", "says"),
    [
        pytest.param([], "give the command that runs `wrangler dev`", id="nothing"),
        pytest.param(["npm", "run", "dev"], "does not run wrangler itself", id="npm-script"),
        pytest.param(["wrangler", "deploy"], "only `wrangler dev`", id="deploy"),
        pytest.param(["wrangler"], "only `wrangler dev`", id="no-subcommand"),
        pytest.param(["wrangler", "dev", "--local"], "drop --local", id="local"),
        pytest.param(["wrangler", "dev", "-l"], "drop --local", id="local-short"),
        pytest.param(["wrangler", "dev", "--remote"], "drop --remote", id="remote"),
        pytest.param(["wrangler", "dev", "-r"], "drop --remote", id="remote-short"),
        pytest.param(["wrangler", "dev", "--remote=true"], "drop --remote", id="remote-true"),
    ],
)
def test_commands_that_cannot_work_are_refused_with_the_way_out(
    given: list[str], says: str
) -> None:
    with pytest.raises(CommandError) as refused:
        prepare(given)

    assert says in str(refused.value)


def fake_wrangler(folder: Path, prints: str, exit_code: int = 0) -> Path:
    """An executable that answers `--version` as a wrangler would."""
    path = folder / "wrangler"
    path.write_text(f"#!/bin/sh\necho '{prints}'\nexit {exit_code}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.mark.parametrize("version", [TESTED_VERSION, "4.86.7"])
def test_the_tested_minor_release_is_accepted(tmp_path: Path, version: str) -> None:
    command = prepare([str(fake_wrangler(tmp_path, version)), "dev"])

    assert check_version(command, os.environ) == version


@pytest.mark.parametrize("version", ["4.85.0", "4.87.0", "3.114.0"])
def test_another_version_is_refused_naming_the_tested_one(tmp_path: Path, version: str) -> None:
    command = prepare([str(fake_wrangler(tmp_path, f" ⛅️ wrangler {version}")), "dev"])

    with pytest.raises(CommandError) as refused:
        check_version(command, os.environ)

    assert f"wrangler {version} is not supported" in str(refused.value)
    assert f"npx wrangler@{TESTED_VERSION} dev" in str(refused.value)


def test_a_wrangler_that_fails_is_refused_with_what_it_said(tmp_path: Path) -> None:
    said = "Wrangler requires at least Node.js v22.12.0"
    command = prepare([str(fake_wrangler(tmp_path, said, exit_code=1)), "dev"])

    with pytest.raises(CommandError) as refused:
        check_version(command, os.environ)

    assert "cannot tell which wrangler" in str(refused.value)
    assert said in str(refused.value)


def test_a_missing_wrangler_is_refused(tmp_path: Path) -> None:
    command = prepare([str(tmp_path / "wrangler"), "dev"])

    with pytest.raises(CommandError, match="not found"):
        check_version(command, os.environ)
