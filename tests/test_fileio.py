"""Atomic writes and folder swaps: a kill at any moment leaves the old or the new, whole."""

from __future__ import annotations

import prefaudit.fileio as fileio


def _folder(path, text):
    path.mkdir()
    (path / "x").write_text(text)
    return path


def test_swap_folder_puts_the_new_folder_in_place_and_removes_the_old(tmp_path):
    final = _folder(tmp_path / "model", "old")
    fileio.swap_folder(_folder(tmp_path / ".model.tmp", "new"), final)
    assert (final / "x").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_swap_folder_without_an_old_folder(tmp_path):
    fileio.swap_folder(_folder(tmp_path / "new", "new"), tmp_path / "model")
    assert (tmp_path / "model" / "x").read_text() == "new"


def test_swap_folder_where_the_system_cannot_exchange(tmp_path, monkeypatch):
    monkeypatch.setattr(fileio, "_exchange", lambda a, b: False)
    final = _folder(tmp_path / "model", "old")
    fileio.swap_folder(_folder(tmp_path / "new", "new"), final)
    assert (final / "x").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_swap_folder_raises_on_a_real_failure_and_leaves_the_old_folder(tmp_path):
    final = _folder(tmp_path / "model", "old")
    try:
        fileio.swap_folder(tmp_path / "no such stage", final)
    except OSError:
        pass
    else:
        raise AssertionError("swapping in a missing folder must raise")
    assert (final / "x").read_text() == "old"


def test_written_files_follow_the_umask_not_mkstemps_0600(tmp_path):
    import os

    path = fileio.write_bytes(tmp_path / "a.json", b"{}")
    assert path.stat().st_mode & 0o777 == 0o666 & ~fileio.umask()
    assert os.access(path, os.R_OK)


def test_a_swap_killed_between_its_two_renames_is_undone_not_lost(tmp_path):
    """Where the system cannot exchange, swap_folder renames the old folder aside first; a kill
    right then leaves only `.model.old`. The next staged command puts it back before anything
    else (it used to start a fresh folder, and the one after deleted the aside copy)."""
    from prefaudit.outputs import staged

    aside = _folder(tmp_path / ".model.old", "old")
    (aside / "weights").write_text("hours of training")
    with staged(tmp_path / "model") as stage:
        assert (stage / "weights").read_text() == "hours of training"
        (stage / "x").unlink()
    assert (tmp_path / "model" / "weights").read_text() == "hours of training"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
