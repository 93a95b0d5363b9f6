"""`cxclean inspect` over good and corrupt files, through the real Click entry point."""
import pandas as pd
from click.testing import CliRunner

from cleaner.cli import main
from imagegen import phantom, write_dicom, write_jpeg, write_png8, write_png16


def make_folder(root):
    film = phantom(64, 64)
    (root / "ok").mkdir(parents=True)
    write_png8(root / "ok" / "a.png", film)
    write_png16(root / "ok" / "b16.png", film)
    write_jpeg(root / "ok" / "c.jpg", film)
    write_dicom(root / "ok" / "IM0001", film, photometric="MONOCHROME1", age="006M")
    bad = root / "bad"
    bad.mkdir()
    (bad / "empty.png").write_bytes(b"")
    (bad / "trunc.png").write_bytes((root / "ok" / "a.png").read_bytes()[:100])
    (bad / "random.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"garbage" * 10)
    write_dicom(bad / "nopix.dcm", film, with_pixels=False)
    (root / "readme.txt").write_text("not an image")


def test_inspect_reports_each_file(tmp_path):
    make_folder(tmp_path)
    out = tmp_path / "table.csv"
    result = CliRunner().invoke(main, ["inspect", str(tmp_path), "--csv", str(out)])
    assert result.exit_code == 0, result.output
    assert "8 file(s): 4 read, 4 failed" in result.output
    assert "skipped (not candidates): 1 non-image (.txt)" in result.output
    table = pd.read_csv(out).set_index("path")
    assert len(table) == 8
    ok = table[table.status == "ok"]
    assert sorted(p.rsplit("/", 1)[1] for p in ok.index) == ["IM0001", "a.png", "b16.png", "c.jpg"]
    dcm = table.loc[str(tmp_path / "ok" / "IM0001")]
    assert (dcm.format, dcm.photometric, dcm.age_years, dcm.bits) == ("DICOM", "MONOCHROME1", 0.5, 12)
    errors = table[table.status == "error"].error.to_dict()
    assert errors[str(tmp_path / "bad" / "empty.png")] == "empty file (0 bytes)"
    assert errors[str(tmp_path / "bad" / "nopix.dcm")] == "DICOM has no pixel data"
    assert "truncated" in errors[str(tmp_path / "bad" / "trunc.png")]
    assert "FAIL" in result.output and "nopix.dcm: DICOM has no pixel data" in result.output


def test_strict_exit_code_and_workers(tmp_path):
    make_folder(tmp_path)
    runner = CliRunner()
    assert runner.invoke(main, ["inspect", str(tmp_path / "ok"), "--strict"]).exit_code == 0
    strict = runner.invoke(main, ["inspect", str(tmp_path), "--strict", "--workers", "2", "-q"])
    assert strict.exit_code == 1
    assert "4 read, 4 failed" in strict.output and "ok    " not in strict.output


def test_help_has_examples():
    runner = CliRunner()
    assert "Examples:" in runner.invoke(main, ["--help"]).output
    assert "Examples:" in runner.invoke(main, ["inspect", "--help"]).output
