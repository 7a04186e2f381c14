"""LoRA adapters on disk: one store per served model. No FastAPI, no vLLM.

    <adapters_dir>/<model slug>/<adapter name>/adapter_config.json
                                               adapter_model.safetensors
    e.g. adapters/cf-qwen-qwq-32b/pirate/  serves `"lora": "pirate"` on @cf/qwen/qwq-32b

    store = AdapterStore(root, base, limits)
    store.resolve("pirate") -> Adapter(name="pirate", id=1, path=root / "pirate")

Errors, all raised before an engine sees the adapter:

    AdapterError                  (engine.lora.format)
    ├── AdapterNameInvalid        not a plain folder name: "../x", "/etc", "a\\0b", ...
    ├── AdapterNotFound           no folder of that name, no adapter of that id
    ├── AdapterMissingFiles       (engine.lora.format) a required file is absent
    └── AdapterInvalid            (engine.lora.format) unsafe, malformed, or does not fit

Ids are what the engine keys its adapter cache by: integers >= 1, one per adapter content,
stable for the life of the process. Replacing an adapter's files gives it a new id, so an engine
never serves stale weights from its cache under the old one. Names that lead to the same folder
(a symlink `<finetune id> -> <name>` inside the store) share one id.
"""

import os
import re
from dataclasses import dataclass
from pathlib import Path

from engine.lora.format import (
    AdapterError,
    AdapterLimits,
    LoraBase,
    validate_adapter,
)
from engine.types import Adapter

_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
"""Adapter names are folder names; no separators, no leading dot, no NUL, no spaces."""

PLAIN_NAME_RULE = (
    "use letters, digits, '.', '_' and '-' (at most 128, starting with a letter or digit)"
)
"""What `is_plain_name` accepts, in words for error messages."""

# What identifies one version of an adapter's files: (file name, mtime in ns, size) of each.
Signature = tuple[tuple[str, int, int], ...]


class AdapterNameInvalid(AdapterError):
    def __init__(self, name: str) -> None:
        super().__init__(f"{name!r} is not a valid adapter name: {PLAIN_NAME_RULE}")


class AdapterNotFound(AdapterError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no adapter named {name!r}")


def model_slug(model_name: str) -> str:
    """The folder of a model's adapters: `@cf/qwen/qwq-32b` -> `cf-qwen-qwq-32b`."""
    return re.sub(r"[^a-z0-9]+", "-", model_name.lower()).strip("-")


def is_plain_name(name: str) -> bool:
    return _PLAIN_NAME.fullmatch(name) is not None


class AdapterIds:
    """Hands out engine adapter ids. Models served by one engine must share one AdapterIds:
    the engine knows adapters only by id."""

    def __init__(self) -> None:
        self._ids: dict[tuple[Path, Signature], int] = {}

    def id_for(self, folder: Path, signature: Signature) -> int:
        return self._ids.setdefault((folder, signature), len(self._ids) + 1)


@dataclass(frozen=True, slots=True)
class _Resolved:
    signature: Signature
    adapter: Adapter


class AdapterStore:
    """The adapters of one base model, one folder each under `root` (which may not exist yet:
    then no adapter is found). Every `resolve` re-validates an adapter whose files changed."""

    def __init__(
        self,
        root: Path,
        base: LoraBase,
        limits: AdapterLimits,
        ids: AdapterIds | None = None,
    ) -> None:
        self.root = root.expanduser().absolute()
        self.base = base
        self.limits = limits
        self._ids = ids or AdapterIds()
        self._resolved: dict[str, _Resolved] = {}
        self._names_by_id: dict[int, str] = {}

    def folder(self, name: str) -> Path:
        """Where the adapter `name` lives (or an upload of it should be written).

        Raises AdapterNameInvalid for anything but a plain folder name.
        """
        if not is_plain_name(name):
            raise AdapterNameInvalid(name)
        return self.root / name

    def resolve(self, name_or_id: str) -> Adapter:
        """The validated adapter with this folder name, or with this id (in decimal, as
        previously resolved). A folder name wins over an id. Raises AdapterError subclasses."""
        folder = self.folder(name_or_id)
        name = name_or_id
        if not folder.is_dir():
            known = self._names_by_id.get(int(name_or_id)) if name_or_id.isdecimal() else None
            if known is None:
                raise AdapterNotFound(name_or_id)
            name, folder = known, self.root / known
        signature = _signature(folder)
        resolved = self._resolved.get(name)
        if resolved is not None and resolved.signature == signature:
            return resolved.adapter
        validate_adapter(folder, self.base, self.limits)
        real = folder.resolve()
        adapter = Adapter(name=name, id=self._ids.id_for(real, signature), path=real)
        self._resolved[name] = _Resolved(signature, adapter)
        self._names_by_id[adapter.id] = name
        return adapter


def _signature(folder: Path) -> Signature:
    try:
        with os.scandir(folder) as entries:
            listed = list(entries)
    except OSError:
        # Gone (or unreadable) since the is_dir check: as if it had never been there.
        raise AdapterNotFound(folder.name) from None
    signature: list[tuple[str, int, int]] = []
    for entry in listed:
        try:
            stat = entry.stat()
        except OSError:
            continue  # a dangling link: validation reports the file as missing
        signature.append((entry.name, stat.st_mtime_ns, stat.st_size))
    return tuple(sorted(signature))
