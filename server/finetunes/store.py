"""Finetunes (Workers AI's LoRA uploads), kept on disk next to the adapter store. No HTTP here.

    <adapters_dir>/
    ├── .finetunes/                     a leading '.': never a valid adapter name
    │   └── <finetune id>/
    │       ├── finetune.json           the record (FinetuneRecord), rewritten atomically
    │       ├── incoming/               uploads as they stream in (temporary files)
    │       ├── adapter/                the first file received, complete and checked
    │       └── .candidate-*/           the second file and a link to the first, checked whole
    └── <model slug>/                   the model's AdapterStore (engine.lora.store)
        ├── <name>/                     the candidate, renamed here: one rename, so an adapter
        │                               is never half visible
        └── <finetune id> -> <name>     a relative symlink: `"lora": "<finetune id>"` works too

Rules:
- `model` is a served model whose engine serves LoRA (else 5007, or 5005).
- `name` is a plain adapter name (`engine.lora.store.is_plain_name`: never all digits, which
  `lora` reads as an adapter id), not shaped like a finetune id (which `lora` and the assets
  route read as one), and unique on the whole server: among all accounts' finetunes (the run
  route finds adapters by name in one store shared by every account, and the assets route by
  name within an account) and among the adapters already installed for the model. So no
  finetune's name can stand for another finetune's id or another adapter's id.
- Records of an earlier version named all digits are kept and listed, but take no assets.
- Assets: `adapter_config.json` and `adapter_model.safetensors`, each checked on arrival
  (`engine.lora.parts`), the pair checked in full (`engine.lora.format`) when the second
  arrives. Once stored, an asset cannot be replaced (409).
- Every file lands by temp file, fsync, rename; a refused upload leaves nothing behind, and
  what a crash leaves is swept at the next start (`server.finetunes.leftovers`).
"""

import fcntl
import json
import logging
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from engine.durable import fsync_path, write_atomically
from engine.lora.format import AdapterError, validate_adapter
from engine.lora.parts import PART_NAMES, check_part
from engine.lora.store import DIGITS_RULE, PLAIN_NAME_RULE, AdapterStore, is_id, is_plain_name
from server.errors import (
    BadInput,
    FinetuneAssetExists,
    FinetuneExists,
    FinetuneNotFound,
    InvalidFinetune,
    LoraNotSupported,
    NoSuchModel,
)
from server.finetunes.layout import (
    CANDIDATE_PREFIX,
    DATA_DIR,
    INCOMING_DIR,
    LOCK_FILE,
    NEW_PREFIX,
    RECORD_FILE,
    STAGING_DIR,
)
from server.finetunes.leftovers import sweep_leftovers
from server.finetunes.schemas import (
    FinetuneCreate,
    FinetuneRecord,
    PublicQuery,
    asset_entry,
    timestamp,
)
from server.generation.registry import ServedModel
from server.settings import Settings

logger = logging.getLogger(__name__)


class Finetunes:
    """The finetunes of every account. Safe to share between threads: changes are serialised
    by one lock, and every read goes to disk, so what a restart finds is what was there."""

    def __init__(
        self,
        adapters_dir: Path,
        stores: Mapping[str, AdapterStore | None],
        max_file_bytes: int,
    ) -> None:
        """`stores`: each served model's adapter store, None for a model served without LoRA."""
        self.root = adapters_dir.expanduser().absolute() / DATA_DIR
        self.max_file_bytes = max_file_bytes
        self._stores = stores
        self._lock = threading.Lock()

    def create(self, account_id: str, request: FinetuneCreate) -> FinetuneRecord:
        """A new finetune without assets. Raises NoSuchModel, LoraNotSupported, BadInput,
        FinetuneExists."""
        store = self._store(request.model)
        name = request.name
        if not is_plain_name(name) or _is_finetune_id(name):
            rule = DIGITS_RULE if is_id(name) else PLAIN_NAME_RULE + ", not like a finetune id"
            raise BadInput(f"name: {name!r} is not a valid finetune name: {rule}")
        with self._exclusive():
            records = list(self._records())
            if any(record.name == name for record in records):
                raise FinetuneExists(name, "finetune names are unique on this server")
            if os.path.lexists(store.folder(name)):
                raise FinetuneExists(
                    name, f"an adapter of that name is installed for {store.base.name}"
                )
            now = timestamp(datetime.now(UTC))
            record = FinetuneRecord(
                id=str(uuid.uuid4()),
                account_id=account_id,
                name=name,
                model=request.model,
                description=request.description,
                public=request.public,
                created_at=now,
                modified_at=now,
                sequence=1 + max((record.sequence for record in records), default=0),
            )
            self._add(record)
        logger.info("finetune %r (%s) created for %s", name, record.id, record.model)
        return record

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """One writer at a time, among this process's threads and among every server process
        that shares the folder (`serve --workers N`, several containers on one volume)."""
        with self._lock:
            self.root.mkdir(parents=True, exist_ok=True)
            with open(self.root / LOCK_FILE, "a+b") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)

    def of_account(self, account_id: str) -> list[FinetuneRecord]:
        """The account's finetunes, oldest first."""
        return [record for record in self._sorted() if record.account_id == account_id]

    def public(self, query: PublicQuery) -> list[FinetuneRecord]:
        """Every account's finetunes created with `public: true`, ordered and paged."""
        found = [record for record in self._sorted() if record.public]
        found.sort(key=lambda record: getattr(record, query.order_by) or "")  # stable
        end = None if query.limit is None else query.offset + query.limit
        return found[query.offset : end]

    def find(self, account_id: str, ref: str) -> FinetuneRecord:
        """The account's finetune with this id or name. Raises FinetuneNotFound."""
        key = ref.lower() if _is_finetune_id(ref) else None
        for record in self._records():
            if record.account_id == account_id and (record.id == key or record.name == ref):
                return record
        raise FinetuneNotFound(ref)

    def expecting_assets(self, record: FinetuneRecord) -> Path:
        """Where an upload for `record` may stream in (a folder on the store's file system).

        Raises FinetuneAssetExists when the finetune has both its files already, so that a
        client is refused before it sends the whole file.
        """
        store = self._store_of(record)
        if self._published(record, store):
            raise FinetuneAssetExists(record.name, " and ".join(PART_NAMES))
        incoming = self._folder(record) / INCOMING_DIR
        incoming.mkdir(exist_ok=True)
        return incoming

    def add_asset(self, record: FinetuneRecord, file_name: str, received: Path) -> dict[str, Any]:
        """Store the file at `received` (complete, fsynced, in `expecting_assets`) as the
        finetune's `file_name`; publish the adapter once it has both files.

        The file is moved, or left where it is for the caller to delete. Raises BadInput,
        InvalidFinetune, FinetuneAssetExists, FinetuneExists.
        """
        if file_name not in PART_NAMES:
            raise BadInput(
                f"file_name: {file_name!r} is not accepted (only {' and '.join(PART_NAMES)})"
            )
        store = self._store_of(record)
        try:
            check_part(received, file_name, store.base, store.limits)
        except AdapterError as error:
            raise InvalidFinetune(record.name, str(error)) from None
        with self._exclusive():
            if self._published(record, store):
                raise FinetuneAssetExists(record.name, file_name)
            staging = self._folder(record) / STAGING_DIR
            staging.mkdir(exist_ok=True)
            if (staging / file_name).exists():
                raise FinetuneAssetExists(record.name, file_name)
            partner = next(part for part in PART_NAMES if part != file_name)
            if (staging / partner).exists():
                self._publish(record, store, staging / partner, received, file_name)
            else:
                os.replace(received, staging / file_name)
                fsync_path(staging)
            now = timestamp(datetime.now(UTC))
            self._write(record.model_copy(update={"modified_at": now}))
        logger.info("finetune %r (%s): %s stored", record.name, record.id, file_name)
        return asset_entry(record.id, str(uuid.uuid4()), file_name, now)

    def _publish(
        self,
        record: FinetuneRecord,
        store: AdapterStore,
        partner: Path,
        received: Path,
        file_name: str,
    ) -> None:
        """Assemble the adapter from the staged `partner` and the `received` file in a folder
        of its own, check it whole, and rename that folder into the store.

        Until the rename nothing is in the store and the staging folder is untouched, so a
        refusal (or a crash) leaves the finetune as it was before this upload.
        """
        candidate = Path(tempfile.mkdtemp(prefix=CANDIDATE_PREFIX, dir=self._folder(record)))
        try:
            _link_or_copy(partner, candidate / partner.name)
            os.replace(received, candidate / file_name)
            try:
                validate_adapter(candidate, store.base, store.limits)
            except AdapterError as error:
                raise InvalidFinetune(record.name, str(error)) from None
            target = store.folder(record.name)
            if os.path.lexists(target):
                raise FinetuneExists(record.name, "an adapter of that name was installed since")
            fsync_path(candidate)
            store.root.mkdir(parents=True, exist_ok=True)
            alias = store.root / record.id
            if not os.path.lexists(alias):
                # Dangling until the rename below: the id and the name appear together.
                os.symlink(record.name, alias)
            os.rename(candidate, target)
        except BaseException:
            shutil.rmtree(candidate, ignore_errors=True)
            raise
        fsync_path(store.root)
        # The staged file, and candidates a crash may have left. (`incoming` stays: an upload
        # may be streaming into it, to be refused.)
        for leftover in self._folder(record).iterdir():
            if leftover.name not in (RECORD_FILE, INCOMING_DIR):
                shutil.rmtree(leftover, ignore_errors=True)
        logger.info("finetune %r (%s) published as %s", record.name, record.id, target)

    def _store_of(self, record: FinetuneRecord) -> AdapterStore:
        """The store `record` publishes into. Raises NoSuchModel, LoraNotSupported and, for a
        finetune named all digits before such names were refused, InvalidFinetune."""
        store = self._store(record.model)
        if not is_plain_name(record.name):
            raise InvalidFinetune(
                record.name, f"{DIGITS_RULE}; create a finetune with another name"
            )
        return store

    def warn_of_unserved(self) -> None:
        """Log what an all-digit name keeps from being served: adapter folders, finetunes."""
        for model, store in self._stores.items():
            if store is None:
                continue
            for name in store.misnamed():
                logger.warning(
                    "%s: adapter %s is never served: %s; rename its folder",
                    model,
                    store.root / name,
                    DIGITS_RULE,
                )
        for record in self._records():
            if is_id(record.name):
                logger.warning(
                    "finetune %r (%s) is never served: %s; create it again with another name",
                    record.name,
                    record.id,
                    DIGITS_RULE,
                )

    def _store(self, model: str) -> AdapterStore:
        if model not in self._stores:
            raise NoSuchModel(model)
        store = self._stores[model]
        if store is None:
            raise LoraNotSupported(model)
        return store

    def _published(self, record: FinetuneRecord, store: AdapterStore) -> bool:
        return store.folder(record.name).is_dir()

    def _folder(self, record: FinetuneRecord) -> Path:
        return self.root / record.id

    def _sorted(self) -> list[FinetuneRecord]:
        return sorted(self._records(), key=lambda record: (record.created_at, record.sequence))

    def _records(self) -> Iterator[FinetuneRecord]:
        try:
            entries = sorted(os.listdir(self.root))
        except FileNotFoundError:
            return
        for entry in entries:
            if entry.startswith(".") or not _is_finetune_id(entry):
                continue
            path = self.root / entry / RECORD_FILE
            try:
                record = FinetuneRecord.model_validate_json(path.read_bytes())
            except (OSError, ValidationError) as error:
                logger.warning("skipping finetune %s: %s cannot be read (%s)", entry, path, error)
                continue
            if record.id == entry:
                yield record

    def _add(self, record: FinetuneRecord) -> None:
        """Create the finetune's folder whole: built under a temporary name, then renamed."""
        self.root.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=NEW_PREFIX, dir=self.root))
        try:
            (building / STAGING_DIR).mkdir()
            _write_record(building / RECORD_FILE, record)
            os.rename(building, self._folder(record))
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
        fsync_path(self.root)

    def _write(self, record: FinetuneRecord) -> None:
        _write_record(self._folder(record) / RECORD_FILE, record)


def serve_finetunes(settings: Settings, models: Mapping[str, ServedModel]) -> Finetunes:
    """The finetunes of the served models, in their adapter stores' folder.

    Called before serving: sweeps what interrupted writes left, and warns of adapters and
    finetunes that an all-digit name keeps from being served.
    """
    stores = {name: model.adapters for name, model in models.items()}
    finetunes = Finetunes(
        settings.resolved_adapters_dir(), stores, settings.max_finetune_file_bytes
    )
    sweep_leftovers(finetunes.root)
    finetunes.warn_of_unserved()
    return finetunes


def _is_finetune_id(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # a file system without hard links
        shutil.copyfile(source, target)


def _write_record(path: Path, record: FinetuneRecord) -> None:
    write_atomically(path, json.dumps(record.model_dump(), indent=2) + "\n")
