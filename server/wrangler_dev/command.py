"""The developer's `wrangler dev` command: checked, named "127", and its wrangler's version.

`wrangler-dev` runs the given command with one change, `--name 127` after `dev`: wrangler
dials the preview edge at `https://{worker name}.{subdomain}:443/`, and only a numeric name
lets the fake subdomain "0.0.1/" turn that into https://127.0.0.1/ with no name to resolve
(cloudflare_api.py). The price: inside this run the Worker is called "127" (state that
Miniflare keys by Worker name, such as Durable Objects under .wrangler/state, is not shared
with plain `wrangler dev` runs). The alternative the trace found, a line in /etc/hosts for
`<name>.<subdomain>.workers.dev`, keeps the name but needs root and edits a system file.

So the command must run wrangler itself (`npx wrangler dev`, `wrangler dev`,
`node_modules/.bin/wrangler dev`, `pnpm exec wrangler dev`, ...), not a script around it.

The protocol followed here is wrangler's internals, not a published API, so the wrangler
the command runs must be the version this was tested with.
"""

import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from server.wrangler_dev.cloudflare_api import WORKER_NAME

TESTED_VERSION = "4.86.0"
# The minor release traced and tested; a patch release is taken to keep its protocol.
SUPPORTED = re.compile(r"4\.86\.\d+")
VERSION_TIMEOUT_S = 120.0
_LOCAL = ("--local", "-l")
_REMOTE = ("--remote", "-r")


class CommandError(Exception):
    """The command cannot work under wrangler-dev; the message says what to run instead."""


@dataclass(frozen=True)
class WranglerCommand:
    argv: list[str]  # what runs: the developer's command with `--name 127`
    version_argv: list[str]  # the same wrangler, asked for its version
    replaced_name: str | None  # the developer's own `--name`, if the command had one


def prepare(argv: Sequence[str]) -> WranglerCommand:
    if not argv:
        raise CommandError(
            "give the command that runs `wrangler dev` after `--`, for example\n"
            "    workers-ai-local wrangler-dev -- npx wrangler dev"
        )
    at = _wrangler_index(argv)
    if at is None:
        raise CommandError(
            f"`{' '.join(argv)}` does not run wrangler itself: wrangler-dev adds "
            f"`--name {WORKER_NAME}` to wrangler's arguments (docs/wrangler-dev.md), so give "
            "the wrangler command your script runs, for example `-- npx wrangler dev`"
        )
    head, rest = list(argv[: at + 1]), list(argv[at + 1 :])
    if not rest or rest[0] != "dev":
        raise CommandError(
            f"only `wrangler dev` goes through wrangler-dev, with `dev` right after "
            f"`{argv[at]}`; got `{' '.join(argv)}`"
        )
    options = rest[1:]
    for option in options:
        if _flag_set(option, _LOCAL):
            raise CommandError(
                "`wrangler dev --local` disables remote bindings, so env.AI only throws "
                '"Binding AI needs to be run remotely"; drop --local'
            )
        if _flag_set(option, _REMOTE):
            raise CommandError(
                "`wrangler dev --remote` runs the whole Worker on Cloudflare; without it the "
                "Worker runs locally and env.AI comes here; drop --remote"
            )
    options, replaced = _without_name(options)
    return WranglerCommand(
        argv=[*head, "dev", "--name", WORKER_NAME, *options],
        version_argv=[*head, "--version"],
        replaced_name=replaced,
    )


def check_version(command: WranglerCommand, environ: Mapping[str, str]) -> str:
    """The version of the wrangler `command` runs; CommandError unless it is supported."""
    try:
        done = subprocess.run(
            command.version_argv,
            env=dict(environ),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=VERSION_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError:
        raise CommandError(f"`{command.version_argv[0]}` not found") from None
    except subprocess.TimeoutExpired:
        raise CommandError(
            f"`{' '.join(command.version_argv)}` did not answer in {VERSION_TIMEOUT_S:.0f} s"
        ) from None
    found = re.search(r"\b(\d+\.\d+\.\d+)\b", done.stdout)
    if done.returncode != 0 or found is None:
        said = (done.stdout + done.stderr).strip()[-600:]
        raise CommandError(
            f"cannot tell which wrangler `{' '.join(command.version_argv)}` runs "
            f"(exit {done.returncode}):\n{said}"
        )
    version = found.group(1)
    if not SUPPORTED.fullmatch(version):
        raise CommandError(
            f"wrangler {version} is not supported: wrangler-dev follows wrangler's internal "
            f"remote-binding protocol, tested with wrangler {TESTED_VERSION}, and other "
            "versions may differ. Run that version, for example\n"
            f"    npm install --save-dev wrangler@{TESTED_VERSION}   (then `-- npx wrangler dev`)\n"
            f"    workers-ai-local wrangler-dev -- npx wrangler@{TESTED_VERSION} dev"
        )
    return version


def _wrangler_index(argv: Sequence[str]) -> int | None:
    for index, token in enumerate(argv):
        name = Path(token).name
        # `npx wrangler@4.86.0`; `wrangler.js` run by node; npm's `wrangler.cmd` shims
        name = name.split("@", 1)[0] if not name.startswith("@") else name
        if re.fullmatch(r"wrangler(\.c?js|\.mjs|\.cmd)?", name):
            return index
    return None


def _flag_set(option: str, names: tuple[str, ...]) -> bool:
    if option in names:
        return True
    flag, equals, value = option.partition("=")
    return bool(equals) and flag == names[0] and value.lower() not in ("false", "0")


def _without_name(options: list[str]) -> tuple[list[str], str | None]:
    kept: list[str] = []
    replaced: str | None = None
    skip_next = False
    for index, option in enumerate(options):
        if skip_next:
            skip_next = False
        elif option == "--name":
            skip_next = True
            replaced = options[index + 1] if index + 1 < len(options) else ""
        elif option.startswith("--name="):
            replaced = option.removeprefix("--name=")
        else:
            kept.append(option)
    return kept, replaced
