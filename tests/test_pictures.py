"""Contact sheets: the PNG shows what the layout says, pixel for pixel."""

from __future__ import annotations

import datetime as dt
from io import BytesIO

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from catalog.pictures import contact_sheet
from schemas import CLIPS

T0 = dt.datetime(2026, 11, 20, 8, 0, tzinfo=dt.timezone.utc)
T0_US = int(T0.timestamp()) * 1_000_000
STEP_US = 100_000


def jpeg(seed: int, size: tuple[int, int] = (64, 48)) -> bytes:
    """A noisy horizontal gradient, different for every seed, as a quality-95 JPEG."""
    w, h = size
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    a[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
    out = BytesIO()
    Image.fromarray(a).save(out, "JPEG", quality=95)
    return out.getvalue()


def decoded(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(BytesIO(data)).convert("RGB"))


def camera(name: str, frames: list[bytes | None], start_us: int = T0_US) -> dict:
    return {
        "camera": name,
        "codec": "h264",
        "width": 64,
        "height": 48,
        "source_fps": 10.0,
        "frame_ts_us": [start_us + k * STEP_US for k in range(len(frames))],
        "frames": frames,
        "source_uri": f"/in/{name}.mp4",
        "dropped_frames": 0,
    }


def clip_rows(*cameras_per_clip: list[dict]) -> list[dict]:
    """Clip rows as a reader returns them: through the clips schema and ``to_pylist``."""
    rows = [
        {
            "clip_id": f"veh-1/s-1/{i:05d}",
            "start_time": T0 + dt.timedelta(seconds=10 * i),
            "cameras": cams,
        }
        for i, cams in enumerate(cameras_per_clip)
    ]
    return pa.Table.from_pylist(rows, schema=CLIPS.schema).to_pylist()


def pixels(png, box) -> np.ndarray:
    left, top, right, bottom = box
    return np.asarray(Image.open(png).convert("RGB"))[top:bottom, left:right]


def find(layout, camera, frame_index):
    (cell,) = [c for c in layout.cells if c.camera == camera and c.frame_index == frame_index]
    return cell


def find_in(layout, clip_id, camera):
    return [c for c in layout.cells if c.clip_id == clip_id and c.camera == camera]


def test_cells_show_their_frames_exactly(tmp_path):
    front = [jpeg(i) for i in range(3)]
    rear = [jpeg(100 + i) for i in range(3)]
    rows = clip_rows([camera("front", front), camera("rear", rear)])
    png = tmp_path / "sheet.png"
    layout = contact_sheet(rows, png)

    assert Image.open(png).size == layout.size
    assert len(layout.cells) == 6 and all(c.status == "ok" for c in layout.cells)
    for name, frames in (("front", front), ("rear", rear)):
        for k, data in enumerate(frames):
            cell = find(layout, name, k)
            assert cell.ts_us == T0_US + k * STEP_US
            left, top, right, bottom = cell.box
            assert (right - left, bottom - top) == (64, 48)
            np.testing.assert_array_equal(pixels(png, cell.box), decoded(data))
    # Guard against a check that anything passes: another frame's pixels differ.
    assert not np.array_equal(pixels(png, find(layout, "front", 1).box), decoded(front[0]))
    assert not np.array_equal(pixels(png, find(layout, "rear", 0).box), decoded(front[0]))


def test_writes_to_a_file_object_and_smaller_frames_sit_top_left(tmp_path):
    small, big = jpeg(1, (32, 24)), jpeg(2, (64, 48))
    out = BytesIO()
    layout = contact_sheet(clip_rows([camera("front", [small, big])]), out)
    out.seek(0)
    assert Image.open(out).size == layout.size
    a, b = find(layout, "front", 0), find(layout, "front", 1)
    assert (a.box[2] - a.box[0], a.box[3] - a.box[1]) == (32, 24)
    assert (a.box[0], a.box[1]) == (a.label_box[0], a.label_box[3])  # top-left of its slot
    assert b.box[0] - a.box[0] >= 64  # the slot is as wide as the widest frame
    np.testing.assert_array_equal(pixels(BytesIO(out.getvalue()), a.box), decoded(small))


def test_max_frames_picks_first_last_and_evenly_between():
    frames = [jpeg(i, (16, 12)) for i in range(20)]
    rows = clip_rows([camera("front", frames), camera("rear", frames[:3])])
    layout = contact_sheet(rows, BytesIO(), max_frames=5)

    front = [c for c in layout.cells if c.camera == "front"]
    # i * (n - 1) // (k - 1) for n=20, k=5
    assert [c.frame_index for c in front] == [0, 4, 9, 14, 19]
    assert [c.ts_us for c in front] == [T0_US + k * STEP_US for k in (0, 4, 9, 14, 19)]
    rear = [c for c in layout.cells if c.camera == "rear"]
    assert [c.frame_index for c in rear] == [0, 1, 2, None, None]  # padded to the grid
    assert [c.status for c in rear[3:]] == ["missing", "missing"]
    one = contact_sheet(rows, BytesIO(), max_frames=1)
    assert [(c.camera, c.frame_index) for c in one.cells] == [("front", 0), ("rear", 0)]


def test_labels_have_text_and_cameras_get_their_own_rows(tmp_path):
    png = tmp_path / "sheet.png"
    rows = clip_rows(
        [camera("front", [jpeg(1), jpeg(2)]), camera("rear", [jpeg(3), jpeg(4)])],
        [camera("front", [jpeg(5)])],
    )
    layout = contact_sheet(rows, png)
    for cell in layout.cells:
        if cell.frame_index is None:
            continue
        strip = pixels(png, cell.label_box)
        assert (strip.max(axis=2) < 100).sum() >= 10, cell  # dark text on a light strip
        assert cell.label_box[3] <= cell.box[1]  # the strip is above the frame
    front0 = find_in(layout, "veh-1/s-1/00000", "front")
    rear0 = find_in(layout, "veh-1/s-1/00000", "rear")
    front1 = find_in(layout, "veh-1/s-1/00001", "front")
    assert len({c.box[1] for c in front0}) == 1 and len({c.box[1] for c in rear0}) == 1
    assert rear0[0].label_box[1] >= front0[0].box[3]  # rear's row is below front's frames
    assert front1[0].label_box[1] > rear0[0].box[3]  # the next clip's block is below
    # Each clip's block starts with a header strip holding its id: not a blank strip.
    assert [clip_id for clip_id, _ in layout.headers] == ["veh-1/s-1/00000", "veh-1/s-1/00001"]
    for _, box in layout.headers:
        header = pixels(png, box)
        assert (header.min(axis=2) > 200).sum() >= 20  # light text on the dark strip
    assert layout.headers[1][1][3] <= front1[0].label_box[1]


def test_broken_and_missing_frames_are_drawn_not_raised(tmp_path):
    png = tmp_path / "sheet.png"
    good = jpeg(7)
    broken = good[: len(good) // 3]  # truncated stream
    rows = clip_rows(
        [
            camera("front", [good, broken, b"\xff\xd8 not a jpeg", None]),
            camera("rear", []),
        ]
    )
    layout = contact_sheet(rows, png)
    statuses = [c.status for c in find_in(layout, "veh-1/s-1/00000", "front")]
    assert statuses == ["ok", "undecodable", "undecodable", "missing"]
    for k in (1, 2):
        red = pixels(png, find(layout, "front", k).box).astype(int)
        reddish = (red[..., 0] > 150) & (red[..., 1] < 60) & (red[..., 2] < 60)
        assert reddish.mean() > 0.7  # mostly red, with the "undecodable" text on it
    gray = pixels(png, find(layout, "front", 3).box)
    assert (gray == gray[0, 0]).all() and len(set(gray[0, 0].tolist())) == 1
    rear = find_in(layout, "veh-1/s-1/00000", "rear")
    assert rear and all(c.status == "missing" for c in rear)
    np.testing.assert_array_equal(pixels(png, find(layout, "front", 0).box), decoded(good))


def test_cell_width_scales_keeping_aspect(tmp_path):
    png = tmp_path / "sheet.png"
    frames = [jpeg(1), jpeg(2, (32, 48))]
    layout = contact_sheet(clip_rows([camera("front", frames)]), png, cell_width=100)
    a, b = find(layout, "front", 0), find(layout, "front", 1)
    assert (a.box[2] - a.box[0], a.box[3] - a.box[1]) == (100, 75)
    assert (b.box[2] - b.box[0], b.box[3] - b.box[1]) == (100, 150)
    expected = Image.open(BytesIO(frames[0])).convert("RGB").resize((100, 75))
    diff = np.abs(pixels(png, a.box).astype(int) - np.asarray(expected).astype(int))
    assert diff.mean() < 10  # the same picture, resampled
    assert Image.open(png).size == layout.size


def test_bad_input_raises():
    with pytest.raises(ValueError, match="empty"):
        contact_sheet([], BytesIO())
    with pytest.raises(ValueError, match="no frames"):
        contact_sheet(clip_rows([camera("front", [])], []), BytesIO())
    rows = clip_rows([camera("front", [jpeg(1)])])
    with pytest.raises(ValueError, match="max_frames=0"):
        contact_sheet(rows, BytesIO(), max_frames=0)
    with pytest.raises(ValueError, match="cell_width=-3"):
        contact_sheet(rows, BytesIO(), cell_width=-3)
    with pytest.raises(ValueError, match="start_time"):
        contact_sheet([{"clip_id": "x", "cameras": []}], BytesIO())
