"""Contact sheets: the flagged films of a reason as PNG grids, for people who review in a file browser."""
from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from cleaner.scan.folder import reason_folder

TILE_SIZE = 200
SHEET_COLS, SHEET_ROWS = 6, 5
CAPTION = 28


def write_contact_sheets(review: Path, reason: str, items: list[dict]) -> list[Path]:
    """``review/<reason-folder>/contact_sheet_N.png``: 6 x 5 tiles per sheet, in page order, each
    captioned with its file name and score."""
    folder = review / reason_folder(reason)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("contact_sheet_*.png"):
        old.unlink()
    per_sheet = SHEET_COLS * SHEET_ROWS
    out = []
    for n, start in enumerate(range(0, len(items), per_sheet), start=1):
        path = folder / f"contact_sheet_{n}.png"
        _sheet(review, items[start : start + per_sheet], start).save(path)
        out.append(path)
    return out


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
