"""LoRA adapters on disk: one store per served model. No FastAPI, no vLLM.

    <adapters_dir>/<model slug>/<adapter name>/adapter_config.json
                                               adapter_model.safetensors
    e.g. adapters/cf-qwen-qwq-32b/pirate/  serves `"lora": "pirate"` on @cf/qwen/qwq-32b

    store = AdapterStore(root, base, limits)
    store.resolve("pirate")      -> Adapter(name="pirate", id=..., path=root / "pirate")
    store.resolve("1793533761")  -> the same adapter, by its id (`store.id_of("pirate")`)

Names and ids never overlap: a name is never all digits, and an all-digit `lora` is only ever
looked up as an id. So no adapter, and no finetune (which is published under its name), can
take the place of another's id. A folder named all digits is never served (`misnamed` lists
them, for a warning at startup).

Errors, all raised before an engine sees the adapter:

    AdapterError                  (engine.lora.format)
    ├── AdapterNameInvalid        not a plain folder name: "../x", "/etc", "a\\0b", "123", ...
    ├── AdapterNotFound           no folder of that name, no adapter of that id
    ├── AdapterMissingFiles       (engine.lora.format) a required file is absent
    └── AdapterInvalid            (engine.lora.format) unsafe, malformed, or does not fit
        └── AdapterIdShared       two adapters of the model have that id (use their names)

An adapter's id is `adapter_id(<model slug>, <folder name>)`: a hash of the two, in vLLM's id
range. It follows from the folder's name alone, so it is the same after a restart, in every
server process sharing the folder, and after the files change; nothing is written or locked to
keep it (ids persisted in a file would need every process to rewrite that file under a lock,
and would be lost with it). Two adapters of one model whose ids collide (odds about n²/2**32
for n adapters) make that id find neither: an id never finds the wrong adapter, and both still
answer to their names. A link `<finetune id> -> <name>` inside the store is another name of
the folder it names, with that folder's id.

`Adapter.id` is what the engine keys its adapter cache by (`AdapterIds`): the adapter's id for
the first version of its files an engine sees, another one for each later version, so that an
engine never serves stale weights from its cache. A restart starts over from the adapter's id.
"""

import hashlib
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from engine.lora.format import (
    AdapterError,
    AdapterInvalid,
    AdapterLimits,
    LoraBase,
    validate_adapter,
)
from engine.types import Adapter

logger = logging.getLogger(__name__)

_FOLDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
"""Adapter names are folder names; no separators, no leading dot, no NUL, no spaces."""
_DIGITS = re.compile(r"[0-9]+")

PLAIN_NAME_RULE = (
    "use letters, digits, '.', '_' and '-' (at most 128, starting with a letter or digit)"
)
"""What `is_plain_name` accepts (besides DIGITS_RULE), in words for error messages."""
DIGITS_RULE = "digits alone are an adapter id, not a name (add a letter, e.g. 'v1')"
"""Why an all-digit name is refused, in words for error messages."""

MAX_ADAPTER_ID = 2**31 - 2
"""vLLM's adapter ids are positive int32s, and 2**31 - 1 is engine.vllm.lora's zero adapter."""
_MAX_ALIAS_HOPS = 8

# What identifies one version of an adapter's files: (file name, mtime in ns, size) of each.
Signature = tuple[tuple[str, int, int], ...]


class AdapterNameInvalid(AdapterError):
    def __init__(self, name: str) -> None:
        rule = DIGITS_RULE if is_id(name) else PLAIN_NAME_RULE
        super().__init__(f"{name!r} is not a valid adapter name: {rule}")


class AdapterNotFound(AdapterError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no adapter named {name!r}")


class AdapterIdShared(AdapterInvalid):
    def __init__(self, adapter_id: int, names: list[str]) -> None:
        super().__init__(
            f"id {adapter_id} belongs to several adapters ({', '.join(map(repr, names))}); "
            "use the adapter's name"
        )


def model_slug(model_name: str) -> str:
    """The folder of a model's adapters: `@cf/qwen/qwq-32b` -> `cf-qwen-qwq-32b`."""
    return re.sub(r"[^a-z0-9]+", "-", model_name.lower()).strip("-")


def is_id(value: str) -> bool:
    """Whether `value` is all (ASCII) digits: an adapter id, never a name."""
    return _DIGITS.fullmatch(value) is not None


def is_plain_name(name: str) -> bool:
    """Whether `name` is a valid adapter name: a plain folder name, not all digits."""
    return _FOLDER_NAME.fullmatch(name) is not None and not is_id(name)


def adapter_id(namespace: str, name: str) -> int:
    """The id of the adapter `name` of the store folder `namespace` (a model slug)."""
    return _hashed_id(f"{namespace}/{name}")


def _hashed_id(text: str) -> int:
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % MAX_ADAPTER_ID + 1


class AdapterIds:
    """Hands out engine adapter ids: one per version of an adapter's files, never one twice.
    Models served by one engine must share one AdapterIds: the engine knows adapters only by
    id."""

    def __init__(self) -> None:
        self._ids: dict[tuple[Path, Signature], int] = {}
        self._taken: set[int] = set()
        # Requests are prepared on more than one thread: two adapters must never get one id.
        self._lock = threading.Lock()

    def id_for(self, folder: Path, signature: Signature, preferred: int) -> int:
        """The engine id of this version of the adapter in `folder`: `preferred` (its adapter
        id) unless an earlier version or another adapter holds it already."""
        key = (folder, signature)
        with self._lock:
            if key not in self._ids:
                candidate, attempt = preferred, 0
                while candidate in self._taken:
                    attempt += 1
                    candidate = _hashed_id(f"{preferred}+{attempt}")
                self._taken.add(candidate)
                self._ids[key] = candidate
            return self._ids[key]


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

    def folder(self, name: str) -> Path:
        """Where the adapter `name` lives (or an upload of it should be written).

        Raises AdapterNameInvalid for anything but a plain folder name that is not all digits.
        """
        if not is_plain_name(name):
            raise AdapterNameInvalid(name)
        return self.root / name

    def id_of(self, name: str) -> int:
        """The id of the adapter `name` (a valid name; its folder need not exist yet)."""
        return adapter_id(self.root.name, self._aliased(name))

    def resolve(self, name_or_id: str) -> Adapter:
        """The validated adapter with this folder name, or with this id (all digits, in
        decimal). Raises AdapterError subclasses."""
        name = self._named(name_or_id) if is_id(name_or_id) else name_or_id
        folder = self.folder(name)
        # A link to a folder named all digits (a finetune's id, of a finetune named so before
        # such names were refused) does not serve it either.
        if not folder.is_dir() or is_id(self._aliased(name)):
            raise AdapterNotFound(name_or_id)
        signature = _signature(folder)
        resolved = self._resolved.get(name)
        if resolved is not None and resolved.signature == signature:
            return resolved.adapter
        summary = validate_adapter(folder, self.base, self.limits)
        real = folder.resolve()
        own_id = self.id_of(name)
        adapter = Adapter(name=name, id=self._ids.id_for(real, signature, own_id), path=real)
        self._resolved[name] = _Resolved(signature, adapter)
        logger.info(
            "LoRA adapter %r of %s has id %d (rank %d on %s)",
            name,
            self.base.name,
            own_id,
            summary.rank,
            ", ".join(summary.target_modules),
        )
        return adapter

    def misnamed(self) -> list[str]:
        """The entries of the store named all digits: never served, as such a name is an id."""
        return sorted(entry for entry in _entries(self.root) if is_id(entry))

    def _named(self, digits: str) -> str:
        """The name of the one adapter whose id is `digits`. Raises AdapterNotFound and
        AdapterIdShared."""
        wanted = int(digits) if len(digits) <= len(str(MAX_ADAPTER_ID)) else 0
        if not 1 <= wanted <= MAX_ADAPTER_ID:
            raise AdapterNotFound(digits)
        # Every request by id hashes the folder's names: no cache to go stale, and a collision
        # is seen whichever of the two adapters arrived first.
        names = [
            entry
            for entry in _entries(self.root)
            if is_plain_name(entry)
            and adapter_id(self.root.name, entry) == wanted
            and self._aliased(entry) == entry
            and (self.root / entry).is_dir()
        ]
        if not names:
            raise AdapterNotFound(digits)
        if len(names) > 1:
            logger.warning("%s: adapters %s share the id %d", self.base.name, names, wanted)
            raise AdapterIdShared(wanted, sorted(names))
        return names[0]

    def _aliased(self, name: str) -> str:
        """`name`, or if it is a link to another entry of the store (as a finetune's id links
        to its name), that entry's name."""
        for _ in range(_MAX_ALIAS_HOPS):
            try:
                target = os.readlink(self.root / name)
            except OSError:  # not a link, or not there
                return name
            if not (is_id(target) or _FOLDER_NAME.fullmatch(target)):
                return name  # a link out of the store: a name of its own
            name = target
        return name


def _entries(root: Path) -> list[str]:
    try:
        return os.listdir(root)
    except OSError:  # no adapter stored yet
        return []


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
