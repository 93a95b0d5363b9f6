"""Contact sheets: the flagged films of a reason as JPEG grids, for people who review in a file browser."""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from cleaner.scan.folder import reason_folder

TILE_SIZE = 200
SHEET_COLS, SHEET_ROWS = 6, 5
CAPTION = 28
#: JPEG, as the thumbnails they are made of: a sheet is written in 6 ms against 100 ms as a PNG (zlib level 1),
#: and is a quarter of the size (benchmarks/review_build.py)
SHEET_SUFFIX, SHEET_QUALITY = ".jpg", 85


def plan_contact_sheets(review: Path, reason: str, items: list[dict], previous: dict | None = None):
    """``review/<reason-folder>/contact_sheet_N.jpg``: 6 x 5 tiles per sheet, in page order. Returns
    ({sheet path: signature}, the sheets to draw as ``draw_sheet`` jobs): a sheet whose tiles are those recorded
    in ``previous`` (path relative to ``review`` -> signature) is left as it is; sheets beyond the last go."""
    folder = review / reason_folder(reason)
    folder.mkdir(parents=True, exist_ok=True)
    per_sheet = SHEET_COLS * SHEET_ROWS
    previous = previous or {}
    record, jobs = {}, []
    for n, start in enumerate(range(0, len(items), per_sheet), start=1):
        path = folder / f"contact_sheet_{n}{SHEET_SUFFIX}"
        chunk = items[start : start + per_sheet]
        sig = _signature(review, chunk, start)
        if not (path.is_file() and previous.get(path.relative_to(review).as_posix()) == sig):
            jobs.append((str(review), [{k: it.get(k) for k in ("thumb", "path", "score", "age")} for it in chunk],
                         start, str(path)))
        record[path] = sig
    for old in folder.glob("contact_sheet_*.*"):  # also the PNG sheets earlier builds wrote
        if old not in record and old.suffix in (".png", SHEET_SUFFIX):
            old.unlink()
    return record, jobs


def draw_sheet(job: tuple) -> str:
    """Draw one contact sheet (in a worker process): each tile captioned with its file name and score."""
    review, chunk, start, path = job
    _sheet(Path(review), chunk, start).save(path, quality=SHEET_QUALITY)
    return path


def _signature(review: Path, chunk: list[dict], start: int) -> str:
    """What a sheet shows: its tiles' pictures (link and modification time), names and captions, in order."""
    def stamp(thumb):
        try:
            return (review / thumb).stat().st_mtime_ns if thumb else None
        except OSError:
            return None

    tiles = [[it.get("thumb"), stamp(it.get("thumb")), it["path"], it.get("score"), it.get("age")] for it in chunk]
    return hashlib.sha1(json.dumps([start, TILE_SIZE] + tiles).encode("utf-8")).hexdigest()


def _sheet(review: Path, chunk: list[dict], start: int) -> Image.Image:
    font = ImageFont.load_default()
    rows = math.ceil(len(chunk) / SHEET_COLS)
    sheet = Image.new("RGB", (SHEET_COLS * TILE_SIZE, rows * (TILE_SIZE + CAPTION)), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for i, item in enumerate(chunk):
        x, y = (i % SHEET_COLS) * TILE_SIZE, (i // SHEET_COLS) * (TILE_SIZE + CAPTION)
        if item.get("thumb"):
            with Image.open(review / item["thumb"]) as im:
                im = im.convert("RGB")
                im.thumbnail((TILE_SIZE - 4, TILE_SIZE - 4))
                sheet.paste(im, (x + (TILE_SIZE - im.width) // 2, y + (TILE_SIZE - im.height) // 2))
        else:
            draw.text((x + 8, y + TILE_SIZE // 2), "unreadable", fill=(255, 96, 96), font=font)
        name = Path(item["path"]).name
        if len(name) > 32:
            name = name[:14] + "..." + name[-15:]
        label = f"score {item['score']:.3f}" if item.get("score") is not None else (
            f"age {item['age']:g}" if item.get("age") is not None else "")
        draw.text((x + 4, y + TILE_SIZE + 2), name, fill=(230, 230, 230), font=font)
        draw.text((x + 4, y + TILE_SIZE + 14), f"#{start + i + 1} {label}", fill=(255, 200, 80), font=font)
    return sheet
