"""Staging folders shared by the videos of a batch: never pulled from under a paid download."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from prefect_venice.download import ensure_directory, make_temp_file
from prefect_venice.generation import STAGING_DIR_NAME, LocalDestination


def test_a_folder_removed_between_seeing_it_and_using_it_is_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "videos" / STAGING_DIR_NAME
    real_mkdir = Path.mkdir
    raced: list[Path] = []

    def racing_mkdir(self: Path, *args: Any, **kwargs: Any) -> None:
        if self == target and not raced:
            raced.append(self)  # another run saw it empty and removed it just now
            raise FileExistsError(17, "File exists", str(self))
        real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", racing_mkdir)

    fd, name = make_temp_file(target, prefix=".x.", suffix=".part")

    assert raced == [target]
    assert Path(name).parent == target
    os.close(fd)


def test_a_file_in_the_way_is_still_an_error(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("not a folder")

    with pytest.raises(FileExistsError):
        ensure_directory(tmp_path / "taken")


def test_placing_one_video_leaves_the_shared_staging_folder_to_the_others(tmp_path: Path) -> None:
    destination = LocalDestination(tmp_path)
    destination.staging_dir.mkdir()
    staged = destination.staging_dir / "q1.mp4"
    staged.write_bytes(b"\x00\x00\x00\x18ftypmp42")

    final = destination.place(staged, "q1")

    assert final == tmp_path / "q1.mp4"
    assert destination.staging_dir.is_dir(), "another video of the batch may be staging there"
