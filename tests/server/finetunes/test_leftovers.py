"""What interrupted writes leave in the finetunes folder is swept at startup once untouched for
LEFTOVER_MIN_AGE_S (another server process sharing the folder may be writing a younger one),
and nothing else is touched."""

import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.durable import write_atomically
from server.finetunes.layout import DURABLE_TEMP_PREFIX, DURABLE_TEMP_SUFFIX
from server.finetunes.leftovers import LEFTOVER_MIN_AGE_S, sweep_leftovers
from tests.support.app import ClientFactory, lora_models
from tests.support.finetunes_api import CONFIG, FILES, adapter_files, created_id, upload

DATA = ".finetunes"


def folder_with_a_file(path: Path) -> None:
    path.mkdir(parents=True)
    (path / CONFIG).write_bytes(b"half")


def a_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"half")


# Where each kind of leftover is, under the adapters dir ({id}: a finetune's), and how it looks.
KINDS = [
    pytest.param(DATA + "/.new-k2j4h1", folder_with_a_file, id="new-finetune-folder"),
    pytest.param(DATA + "/{id}/incoming/.upload-x8d1.part", a_file, id="upload"),
    pytest.param(DATA + "/{id}/.candidate-q7w2", folder_with_a_file, id="candidate-adapter"),
    pytest.param(DATA + "/{id}/.tmpa1b2c3.tmp", a_file, id="record-temp-file"),
    pytest.param(DATA + "/.tmpz9y8x7.tmp", a_file, id="temp-file-beside-the-finetunes"),
]


def age(path: Path, seconds: float) -> None:
    """Make `path` (not what it links to) look last modified `seconds` ago."""
    then = time.time() - seconds
    os.utime(path, (then, then), follow_symlinks=False)


@pytest.mark.parametrize(("where", "make"), KINDS)
@pytest.mark.parametrize(
    ("seconds", "swept"),
    [(LEFTOVER_MIN_AGE_S + 60, True), (LEFTOVER_MIN_AGE_S - 60, False)],
    ids=["old", "young"],
)
def test_a_crash_leftover_is_swept_at_startup_once_old_enough(
    make_client: ClientFactory,
    adapters_dir: Path,
    caplog: pytest.LogCaptureFixture,
    where: str,
    make: Callable[[Path], None],
    seconds: float,
    swept: bool,
) -> None:
    first = make_client(models=lora_models(), adapters_dir=adapters_dir)
    finetune = created_id(first, "pirate")
    leftover = adapters_dir / where.format(id=finetune)
    make(leftover)
    age(leftover, seconds)

    with caplog.at_level(logging.WARNING, logger="server.finetunes.leftovers"):
        make_client(models=lora_models(), adapters_dir=adapters_dir)

    assert leftover.exists() is not swept
    assert (f"removed {leftover}, left by an interrupted write" in caplog.text) is swept


def test_nothing_but_leftovers_is_touched(
    make_client: ClientFactory, adapters_dir: Path, tmp_path: Path
) -> None:
    first = make_client(models=lora_models(), adapters_dir=adapters_dir)
    half, whole = created_id(first, "half"), created_id(first, "whole")
    files = adapter_files(tmp_path / "source")
    upload(first, half, CONFIG, files[CONFIG])
    for file_name in FILES:
        upload(first, whole, file_name, files[file_name])
    before = sorted(adapters_dir.rglob("*"))
    for path in before:
        age(path, 10 * LEFTOVER_MIN_AGE_S)

    make_client(models=lora_models(), adapters_dir=adapters_dir)

    assert sorted(adapters_dir.rglob("*")) == before


def test_a_linked_leftover_is_removed_without_following_the_link(tmp_path: Path) -> None:
    root = tmp_path / DATA
    outside = tmp_path / "outside"
    folder_with_a_file(outside)
    root.mkdir()
    (root / ".new-linked").symlink_to(outside)
    age(root / ".new-linked", 2 * LEFTOVER_MIN_AGE_S)

    assert sweep_leftovers(root) == [root / ".new-linked"]
    assert (outside / CONFIG).read_bytes() == b"half"


def test_the_age_limit_is_a_setting_of_the_sweep(tmp_path: Path) -> None:
    root = tmp_path / DATA
    folder_with_a_file(root / ".new-abc")
    modified = (root / ".new-abc").stat().st_mtime

    assert sweep_leftovers(root, min_age_s=60, now=modified + 59) == []
    assert sweep_leftovers(root, min_age_s=60, now=modified + 60) == [root / ".new-abc"]
    assert sweep_leftovers(tmp_path / "nothing-yet") == []


def test_the_sweep_knows_the_temp_file_names_of_durable_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[str] = []
    real_mkstemp = tempfile.mkstemp

    def mkstemp(prefix: str, suffix: str, dir: Path) -> tuple[int, str]:
        descriptor, path = real_mkstemp(prefix=prefix, suffix=suffix, dir=dir)
        os.close(descriptor)
        made.append(Path(path).name)
        raise KeyboardInterrupt  # as a crash would stop it: the temp file stays

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    with pytest.raises(KeyboardInterrupt):
        write_atomically(tmp_path / "finetune.json", "{}")
    (name,) = made
    assert name.startswith(DURABLE_TEMP_PREFIX)
    assert name.endswith(DURABLE_TEMP_SUFFIX)
    age(tmp_path / name, 2 * LEFTOVER_MIN_AGE_S)

    assert sweep_leftovers(tmp_path) == [tmp_path / name]
