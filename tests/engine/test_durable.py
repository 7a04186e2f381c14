"""`engine.durable`: a file is replaced whole or not at all, and no temp file is left over."""

from pathlib import Path

import pytest

from engine.durable import fsync_path, write_atomically


def test_a_file_is_written_and_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "record.json"

    write_atomically(path, "first\n")
    write_atomically(path, "second, ünïcode\n")

    assert path.read_text(encoding="utf-8") == "second, ünïcode\n"
    assert [entry.name for entry in tmp_path.iterdir()] == ["record.json"]


def test_a_failed_write_keeps_the_old_content_and_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    write_atomically(path, "old\n")

    with pytest.raises(UnicodeEncodeError):
        write_atomically(path, "a lone surrogate \ud800 cannot be UTF-8")

    assert path.read_text(encoding="utf-8") == "old\n"
    assert [entry.name for entry in tmp_path.iterdir()] == ["record.json"]


def test_files_and_folders_can_be_flushed(tmp_path: Path) -> None:
    (tmp_path / "data").write_bytes(b"x")

    fsync_path(tmp_path / "data")
    fsync_path(tmp_path)

    with pytest.raises(FileNotFoundError):
        fsync_path(tmp_path / "missing")
