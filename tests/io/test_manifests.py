from pathlib import Path

from cleaner.io.manifests import check_manifest

REPO = Path(__file__).resolve().parents[2]


def test_demo_manifest_matches_bundled_files():
    assert check_manifest(REPO / "data_manifests" / "demo_nih.csv") == []


def test_changed_file_is_caught(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "a.png").write_bytes(b"one")
    manifest = tmp_path / "m" / "x.csv"
    manifest.write_text("path,sha256,source_dataset,licence\na.png,0000,test,CC0\nb.png,1111,test,CC0\n")
    problems = check_manifest(manifest, tmp_path)
    assert any("sha256 differs" in p for p in problems) and any("missing" in p for p in problems)
