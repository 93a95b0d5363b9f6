"""The walker: every candidate once, deterministic, loops and system files handled with counts."""
import os

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
    locked = tmp_path / "locked"
    touch(locked / "a.png")
    touch(tmp_path / "ok.png")
    real_scandir = os.scandir

    def scandir(path):  # permissions are not enforced for root, so refuse the listing here
        if os.fspath(path) == str(locked):
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    stats = WalkStats()
    assert [p.name for p in walk_archive(tmp_path, stats)] == ["ok.png"]
    assert stats.folder_errors == [(str(locked), "cannot list folder: Permission denied")]
