"""The walker: every candidate once, deterministic, loops and system files handled with counts."""
import os

import pytest

from cleaner.io.walker import WalkStats, walk_archive


def touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_walk_order_skips_and_loops(tmp_path):
    root = tmp_path / "archive"
    for rel in ["b/2.png", "b/1.dcm", "a/z/IM0001", "a/x.jpg", "c.png", "a/notes.txt", "a/list.csv",
                "b/.DS_Store", "Thumbs.db", ".hidden.png", "a/meta.json", ".git/objects/x", "__MACOSX/a.png"]:
        touch(root / rel)
    os.symlink(root / "a", root / "b" / "loop_to_a")  # a second way into a/
    os.symlink(root, root / "a" / "z" / "up")  # a loop back to the root
    os.symlink(root / "c.png", root / "link.png")
    os.symlink(root / "gone.png", root / "dangling.png")
    stats = WalkStats()
    found = [p.relative_to(root).as_posix() for p in walk_archive(root, stats)]
    assert found == ["a/x.jpg", "a/z/IM0001", "b/1.dcm", "b/2.png", "c.png", "dangling.png", "link.png"]
    assert found == [p.relative_to(root).as_posix() for p in walk_archive(root)]  # deterministic
    assert stats.candidates == 7
    assert stats.skipped["non-image (.txt)"] == 1 and stats.skipped["non-image (.csv)"] == 1
    assert stats.skipped["non-image (.json)"] == 1
    assert stats.skipped["system file"] == 2 and stats.skipped["hidden file"] == 1
    assert stats.skipped["hidden or system folder"] == 2
    assert stats.skipped["folder already walked (symlink loop or second link)"] == 2
    assert stats.folder_errors == []


def test_single_file_and_missing_root(tmp_path):
    f = touch(tmp_path / "one.png")
    assert list(walk_archive(f)) == [f]
    stats = WalkStats()
    assert list(walk_archive(tmp_path / "nope", stats)) == []
    assert stats.folder_errors == [(str(tmp_path / "nope"), "path not found")]


def test_unlistable_folder_is_reported(tmp_path, monkeypatch):
    from cleaner.io import walker

    locked = tmp_path / "locked"
    touch(locked / "a.png")
    touch(tmp_path / "ok.png")
    real_list = walker.list_folder

    def list_folder(path):  # permissions are not enforced for root, so refuse the listing here
        if os.fspath(path) == str(locked):
            raise PermissionError(13, "Permission denied")
        return real_list(path)

    monkeypatch.setattr(walker, "list_folder", list_folder)
    stats = WalkStats()
    assert [p.name for p in walk_archive(tmp_path, stats)] == ["ok.png"]
    assert stats.folder_errors == [(str(locked), "cannot list folder: Permission denied")]


def test_symlinked_folders_leading_out_of_the_archive_are_counted_not_followed(tmp_path):
    """Followed, a link out could reach anything: another archive, the system, the scan's own live output."""
    root = tmp_path / "archive"
    touch(root / "site" / "a.png")
    touch(tmp_path / "out" / "review" / "rotation" / "copy.png")
    touch(tmp_path / "other" / "b.png")
    os.symlink(tmp_path / "out", root / "site" / "to_out")
    os.symlink("../../other", root / "site" / "to_other")
    os.symlink(root / "site", root / "inside_link")  # inside: followed (once)
    os.symlink(root / "site" / "a.png", root / "file_link.png")  # a file: read where it points, nothing written
    stats = WalkStats()
    found = [p.relative_to(root).as_posix() for p in walk_archive(root, stats)]
    assert found == ["file_link.png", "inside_link/a.png"]
    assert stats.skipped["symlinked folder outside the archive (not followed)"] == 2
    assert stats.skipped["folder already walked (symlink loop or second link)"] == 1


def test_walking_and_reading_leave_access_times_alone(tmp_path):
    """Listing a folder or reading a file updates its access time (relatime: when older than the last change);
    cxclean opens the archive with O_NOATIME where allowed."""
    from cleaner.io.images import read_image
    from imagegen import phantom, write_png8

    root = tmp_path / "archive"
    (root / "sub").mkdir(parents=True)
    image = write_png8(root / "sub" / "a.png", phantom(32, 32, seed=1))
    probe = touch(tmp_path / "probe.bin")
    entries = [root, root / "sub", image, probe]
    old = 1_000_000_000  # 2001: older than every modification, so a plain read would update it
    for p in entries:
        os.utime(p, (old, p.stat().st_mtime))
    probe.read_bytes()
    if probe.stat().st_atime == old:
        pytest.skip("this file system does not update access times on reading (noatime)")
    assert [p.name for p in walk_archive(root)] == ["a.png"]
    read_image(image)
    if os.geteuid() != 0 and image.stat().st_uid != os.geteuid():  # pragma: no cover
        pytest.skip("O_NOATIME needs the file's owner")
    assert [p.stat().st_atime for p in entries[:3]] == [old] * 3
