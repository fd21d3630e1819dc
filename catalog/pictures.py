"""Pictures to look at instead of byte columns: contact sheets of clips.

A grid of frames is Pillow's job: ``contact_sheet`` pastes decoded JPEGs and labels them, and
writes a PNG. (Plots with axes -- histograms -- are drawn by matplotlib: ``catalog.plots``.)
It returns a layout that says where everything went, in PNG pixel coordinates, as
``(left, top, right, bottom)`` boxes with the right and bottom edges exclusive (the convention
of ``Image.crop`` and of ``array[top:bottom, left:right]``), so a test or a notebook can find
any frame in the picture.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cache
from io import BytesIO
from typing import Any, BinaryIO, Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["Cell", "SheetLayout", "contact_sheet"]

Box = tuple[int, int, int, int]
CellStatus = Literal["ok", "undecodable", "missing"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_US = timedelta(microseconds=1)

_MARGIN = 4  # around the whole sheet
_GAP = 2  # between cells and between camera rows
_CLIP_GAP = 8  # between one clip's block and the next header
_FALLBACK_CELL = (160, 120)  # slot size when no frame of the sheet decodes

_WHITE = (255, 255, 255)
_BLACK = (0, 0, 0)
_BLANK = (160, 160, 160)  # missing frame or camera
_BROKEN = (200, 0, 0)  # undecodable frame
_HEADER_BG = (48, 48, 48)

# A frame that Pillow cannot decode raises one of these (UnidentifiedImageError is an OSError,
# a truncated stream raises OSError on load); anything else is a bug and should propagate.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


@dataclass(frozen=True)
class Cell:
    """One grid position of a contact sheet.

    Attributes:
        clip_id: the clip whose block holds the cell.
        camera: the camera of the cell's row (None for the placeholder row of a clip that has no
            cameras, or a camera whose name is null).
        frame_index: index of the frame in the camera's ``frames``/``frame_ts_us`` lists, or None
            for a padding cell (the camera has fewer sampled frames than the sheet has columns).
        ts_us: the frame's absolute UTC time in microseconds (``frame_ts_us``), or None.
        box: the picture's pixels. ``ok``: exactly the pasted frame (native size, or scaled to
            ``cell_width``); ``undecodable``/``missing``: the whole slot, filled red or gray.
        label_box: the text strip above the slot (``camera +t.ttt s``).
        status: ``"ok"`` (the frame is shown), ``"undecodable"`` (red, "undecodable") or
            ``"missing"`` (gray: no frame bytes, no such frame, or no such camera).
    """

    clip_id: str
    camera: str | None
    frame_index: int | None
    ts_us: int | None
    box: Box
    label_box: Box
    status: CellStatus


@dataclass(frozen=True)
class SheetLayout:
    """Where ``contact_sheet`` put everything.

    Attributes:
        size: the PNG's ``(width, height)`` in pixels.
        cells: every grid position drawn, clip by clip, camera row by row, column by column.
        headers: ``(clip_id, box)`` of each clip's header strip, in drawing order.
    """

    size: tuple[int, int]
    cells: tuple[Cell, ...]
    headers: tuple[tuple[str, Box], ...]


def contact_sheet(
    clips: Sequence[Mapping[str, Any]],
    path: str | os.PathLike[str] | BinaryIO,
    *,
    max_frames: int = 8,
    max_clips: int = 4,
    cell_width: int | None = None,
) -> SheetLayout:
    """Draw the frames of clip rows as a grid and write it as a PNG.

    Each clip (the first ``max_clips``) gets a dark header strip with its ``clip_id`` and UTC
    ``start_time``, then one row per camera in the row's order, one column per sampled frame.
    A camera with more than ``max_frames`` frames shows frames ``i * (n - 1) // (max_frames - 1)``
    for ``i`` in ``0..max_frames-1`` (one frame: the first): the first and the last frame of the
    window and evenly spaced indices between, each camera sampled on its own. Above every frame a
    text strip reads ``camera +t.ttt s``, the frame's time from ``frame_ts_us`` relative to the
    clip's ``start_time``; text wider than the cell is cut off.

    Frames are decoded as JPEG (``Image.open(...).convert("RGB")``, no EXIF rotation), so a cell's
    pixels equal the decoded frame exactly at native size. Cells are as big as the largest
    decoded frame, each frame at the cell's top-left. A frame that is not decodable JPEG becomes
    a red cell saying "undecodable"; missing frames, padding columns and cameras without frames
    stay gray. Neither raises.

    Example::

        rows = clips_dataset.read(columns=["clip_id", "start_time", "cameras"]).to_pylist()
        layout = contact_sheet(rows[:2], "sheet.png", max_frames=6, cell_width=160)

    Args:
        clips: clip rows as dicts (``pyarrow.Table.to_pylist()`` of the ``clips`` schema); only
            ``clip_id``, ``start_time`` (an aware or UTC-naive datetime, or int microseconds)
            and ``cameras`` are read.
        path: a local file path, or a writable binary file object, for the PNG.
        max_frames: most frames (columns) per camera, >= 1. Default 8.
        max_clips: most clips drawn (the first ones), >= 1. Default 4.
        cell_width: None (default) draws frames at native size; an int >= 1 scales every frame
            to that width in pixels, keeping its aspect ratio.

    Returns:
        a ``SheetLayout`` with the PNG size and the box of every cell.

    Raises:
        ValueError: no clips, bad options, a clip without ``clip_id``/``start_time``, or no frame
            bytes at all in the clips drawn.
    """
    max_frames = _check_int("max_frames", max_frames, 1)
    max_clips = _check_int("max_clips", max_clips, 1)
    if cell_width is not None:
        cell_width = _check_int("cell_width", cell_width, 1)
    if isinstance(clips, Mapping | str | bytes) or not isinstance(clips, Sequence):
        raise TypeError(f"clips: expected a list of clip row dicts, got {type(clips).__name__}")
    if not clips:
        raise ValueError("contact_sheet: clips is empty; expected at least one clip row")

    blocks = [_plan_clip(i, clip, max_frames) for i, clip in enumerate(clips[:max_clips])]
    if not any(c.data is not None for b in blocks for row in b.rows for c in row):
        raise ValueError(
            f"contact_sheet: the {len(blocks)} clip(s) drawn have no frames at all "
            "(every cameras[].frames is empty or null)"
        )
    images = _decode_all(blocks, cell_width)
    slot_w, slot_h = _slot_size(images.values(), cell_width)

    font = _font()
    label_h = _text_height(font) + 4
    header_h = _text_height(font) + 8
    columns = max(1, *(len(row) for b in blocks for row in b.rows))
    grid_w = columns * (slot_w + _GAP) - _GAP
    header_w = max(_text_width(font, b.title) for b in blocks) + 8
    width = 2 * _MARGIN + max(grid_w, header_w)
    height = _MARGIN - _CLIP_GAP + _MARGIN
    for b in blocks:
        height += _CLIP_GAP + header_h + len(b.rows) * (_GAP + label_h + slot_h)

    sheet = Image.new("RGB", (width, height), _WHITE)
    draw = ImageDraw.Draw(sheet)
    cells: list[Cell] = []
    headers: list[tuple[str, Box]] = []
    y = _MARGIN
    for bi, b in enumerate(blocks):
        header = (_MARGIN, y, width - _MARGIN, y + header_h)
        draw.rectangle(_inclusive(header), fill=_HEADER_BG)
        draw.text((_MARGIN + 4, y + 3), b.title, fill=_WHITE, font=font)
        headers.append((b.clip_id, header))
        y += header_h + _GAP
        for ri, row in enumerate(b.rows):
            for col in range(columns):
                left = _MARGIN + col * (slot_w + _GAP)
                label_box = (left, y, left + slot_w, y + label_h)
                slot = (left, y + label_h, left + slot_w, y + label_h + slot_h)
                planned = row[col] if col < len(row) else None
                image = images.get((bi, ri, col))
                cells.append(
                    _draw_cell(sheet, font, b, row[0].camera, planned, image, label_box, slot)
                )
            y += label_h + slot_h + _GAP
        y += _CLIP_GAP - _GAP
    _save_png(sheet, path)
    return SheetLayout((width, height), tuple(cells), tuple(headers))


# --- contact sheet internals -------------------------------------------------------------------


@dataclass(frozen=True)
class _Planned:
    """A sampled frame slot of one camera: what to decode and how to label it."""

    camera: str | None
    frame_index: int | None
    ts_us: int | None
    data: bytes | None
    note: str = ""  # label text when there is no frame time to show


@dataclass(frozen=True)
class _Block:
    clip_id: str
    start_us: int
    title: str
    rows: list[list[_Planned]]


def _plan_clip(position: int, clip: Mapping[str, Any], max_frames: int) -> _Block:
    if not isinstance(clip, Mapping):
        raise TypeError(f"clips[{position}]: expected a clip row dict, got {type(clip).__name__}")
    clip_id, start = clip.get("clip_id"), clip.get("start_time")
    if clip_id is None or start is None:
        raise ValueError(
            f"clips[{position}]: clip_id={clip_id!r}, start_time={start!r}; both are required"
        )
    start_us = _to_us(start, f"clips[{position}].start_time")
    start_text = (_EPOCH + start_us * _US).strftime("%Y-%m-%d %H:%M:%S.%f")
    title = f"{clip_id}   start {start_text} UTC"
    rows: list[list[_Planned]] = []
    for cam in clip.get("cameras") or []:
        name = cam.get("camera") if cam else None
        ts = list((cam or {}).get("frame_ts_us") or [])
        frames = list((cam or {}).get("frames") or [])
        n = max(len(ts), len(frames))
        if n == 0:
            rows.append([_Planned(name, None, None, None, note="no frames")])
            continue
        row = []
        for idx in _pick(n, max_frames):
            t = ts[idx] if idx < len(ts) else None
            data = frames[idx] if idx < len(frames) else None
            row.append(_Planned(name, idx, t, bytes(data) if data is not None else None))
        rows.append(row)
    if not rows:
        rows.append([_Planned(None, None, None, None, note="no cameras")])
    return _Block(str(clip_id), start_us, title, rows)


def _pick(n: int, k: int) -> list[int]:
    """Indices of ``k`` of ``n`` frames: all if ``n <= k``; else first, last and evenly between."""
    if n <= k:
        return list(range(n))
    if k == 1:
        return [0]
    # Steps are (n-1)/(k-1) >= 1, so the floor keeps indices distinct and ends on n-1.
    return [i * (n - 1) // (k - 1) for i in range(k)]


def _decode_all(
    blocks: list[_Block], cell_width: int | None
) -> dict[tuple[int, int, int], Image.Image | None]:
    """Decoded (and scaled) frame per (block, row, column); None for undecodable bytes."""
    out: dict[tuple[int, int, int], Image.Image | None] = {}
    for b, block in enumerate(blocks):
        for r, row in enumerate(block.rows):
            for c, planned in enumerate(row):
                if planned.data is None:
                    continue
                img = _decode_jpeg(planned.data)
                if img is not None and cell_width is not None and img.width != cell_width:
                    h = max(1, round(img.height * cell_width / img.width))
                    img = img.resize((cell_width, h), Image.Resampling.LANCZOS)
                out[(b, r, c)] = img
    return out


def _decode_jpeg(data: bytes) -> Image.Image | None:
    try:
        with Image.open(BytesIO(data), formats=["JPEG"]) as img:
            return img.convert("RGB")
    except _DECODE_ERRORS:
        return None  # drawn as a red "undecodable" cell; the sheet is for looking, not checking


def _slot_size(images: Iterable[Image.Image | None], cell_width: int | None) -> tuple[int, int]:
    decoded = [img for img in images if img is not None]
    if not decoded:
        if cell_width is None:
            return _FALLBACK_CELL
        return cell_width, max(1, cell_width * 3 // 4)
    width = cell_width or max(img.width for img in decoded)
    return width, max(img.height for img in decoded)


def _draw_cell(
    sheet: Image.Image,
    font: Any,
    block: _Block,
    camera: str | None,
    planned: _Planned | None,
    image: Image.Image | None,
    label_box: Box,
    slot: Box,
) -> Cell:
    """Draw one grid position (label strip and slot) on ``sheet`` and describe it."""
    draw = ImageDraw.Draw(sheet)
    if planned is None:  # padding column: this camera has fewer frames than the sheet has
        draw.rectangle(_inclusive(slot), fill=_BLANK)
        return Cell(block.clip_id, camera, None, None, slot, label_box, "missing")
    # Draw the label on its own strip so text wider than the cell is cut at the cell's edge.
    if planned.ts_us is not None:
        label = f"{planned.camera or '?'} {(planned.ts_us - block.start_us) / 1e6:+.3f} s"
    else:
        label = f"{planned.camera or '?'} {planned.note or 'no time'}"
    strip = Image.new("RGB", (label_box[2] - label_box[0], label_box[3] - label_box[1]), _WHITE)
    ImageDraw.Draw(strip).text((2, 2), label, fill=_BLACK, font=font)
    sheet.paste(strip, label_box[:2])

    if planned.data is None:
        draw.rectangle(_inclusive(slot), fill=_BLANK)
        status: CellStatus = "missing"
        box = slot
    elif image is None:
        draw.rectangle(_inclusive(slot), fill=_BROKEN)
        draw.text((slot[0] + 3, slot[1] + 3), "undecodable", fill=_WHITE, font=font)
        status, box = "undecodable", slot
    else:
        sheet.paste(image, slot[:2])
        status, box = "ok", (slot[0], slot[1], slot[0] + image.width, slot[1] + image.height)
    return Cell(
        block.clip_id, planned.camera, planned.frame_index, planned.ts_us, box, label_box, status
    )


# --- shared helpers ----------------------------------------------------------------------------


@cache
def _font() -> Any:
    return ImageFont.load_default()


def _text_height(font: Any) -> int:
    return int(font.getbbox("Ag|[]")[3])


def _text_width(font: Any, text: str) -> int:
    return int(font.getbbox(text)[2]) if text else 0


def _inclusive(box: Box) -> tuple[int, int, int, int]:
    """``ImageDraw.rectangle`` includes its right and bottom edges; our boxes exclude them."""
    left, top, right, bottom = box
    return left, top, right - 1, bottom - 1


def _to_us(value: Any, what: str) -> int:
    if isinstance(value, datetime):
        if value.tzinfo is None:  # the schema's timestamps are UTC
            value = value.replace(tzinfo=timezone.utc)
        return (value - _EPOCH) // _US
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return int(value)
    raise TypeError(f"{what}={value!r}: expected a datetime or int microseconds since the epoch")


def _check_int(name: str, value: Any, minimum: int) -> int:
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name}={value!r}: expected an integer >= {minimum}")
    return int(value)


def _save_png(img: Image.Image, path: str | os.PathLike[str] | BinaryIO) -> None:
    if isinstance(path, str | os.PathLike):
        img.save(os.fspath(path), format="PNG")
    elif hasattr(path, "write"):
        img.save(path, format="PNG")
    else:
        raise TypeError(
            f"path={path!r}: expected a local file path or a writable binary file object"
        )
