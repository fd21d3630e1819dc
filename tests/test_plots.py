"""Histograms drawn by matplotlib: the counts, the axes' scales and labels, and the PNG."""

from __future__ import annotations

import subprocess
import sys
from io import BytesIO

import numpy as np
import pytest
from PIL import Image
from tablegen import posts_table, write_data_file

from catalog import CommitRequest, Dataset, new_run_id
from catalog.plots import histogram
from transforms.partitioning import partition_dir, split_partitions

pytest.importorskip("matplotlib")


def _png(target) -> np.ndarray:
    if isinstance(target, BytesIO):
        target.seek(0)
    return np.asarray(Image.open(target).convert("RGB"))


def test_histogram_counts_labels_and_picture(tmp_path):
    png = tmp_path / "hist.png"
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.uniform(5, 15, 900), rng.uniform(0, 40, 100)])
    drawn = histogram(
        values, png, title="sizes", xlabel="size (KiB)", bins=20, width=640, height=320
    )

    counts, edges = np.histogram(values, bins=20)
    assert drawn.counts == tuple(counts) and sum(drawn.counts) == len(values)
    np.testing.assert_allclose(drawn.edges, edges)
    # Counts within two orders of magnitude, values from 0 to 40: linear axes.
    assert (drawn.log_x, drawn.log_y) == (False, False)
    assert (drawn.xlabel, drawn.ylabel) == ("size (KiB)", "count")
    assert drawn.stats["n"] == 1000 and drawn.stats["max"] == values.max()
    img = _png(png)
    assert img.shape == (320, 640, 3) == (*drawn.size[::-1], 3)
    # Something is drawn in the middle of the figure (the bars), not a blank canvas.
    middle = img[100:250, 150:500]
    assert (middle != 255).any(axis=2).mean() > 0.05


def test_log_scales_where_numbers_span_orders_of_magnitude():
    rare = histogram([1.0] * 1000 + [5.0], BytesIO(), title="t", xlabel="x", bins=4)
    assert rare.counts == (1000, 0, 0, 1) and rare.log_y and not rare.log_x
    assert rare.ylabel == "count (log scale)"
    # Forced linear: the caller decides.
    assert not histogram([1.0] * 1000 + [5.0], BytesIO(), title="t", xlabel="x", log_y=False).log_y

    lengths = np.random.default_rng(5).lognormal(4, 2, 5000).round() + 1  # 1 to ~100,000
    wide = histogram(lengths, BytesIO(), title="t", xlabel="tokens", bins=30)
    assert wide.log_x and sum(wide.counts) == len(lengths)
    # Log-spaced bins: every bin spans the same ratio.
    ratios = np.array(wide.edges[1:]) / np.array(wide.edges[:-1])
    np.testing.assert_allclose(ratios, ratios[0])


def test_histogram_errors():
    with pytest.raises(ValueError, match="empty"):
        histogram([], BytesIO(), title="t", xlabel="x")
    with pytest.raises(ValueError, match="NaN"):
        histogram([1.0, float("nan")], BytesIO(), title="t", xlabel="x")
    with pytest.raises(ValueError, match="bins=0"):
        histogram([1.0], BytesIO(), title="t", xlabel="x", bins=0)
    with pytest.raises(ValueError, match="log_x needs positive values"):
        histogram([0.0, 10.0], BytesIO(), title="t", xlabel="x", log_x=True)


def _posts_dataset(tmp_path) -> str:
    ds = Dataset.create(str(tmp_path / "posts"), "posts")
    run_id = new_run_id()
    entries = [
        write_data_file(ds, f"{partition_dir(dt)}/{run_id}-{i:05d}.parquet", rows)
        for i, (dt, rows) in enumerate(split_partitions(posts_table(12), ds.spec))
    ]
    ds.commit(CommitRequest(run_id=run_id, add=entries))
    return ds.url


def test_inspect_histogram_says_how_to_install_matplotlib_when_missing(tmp_path):
    url = _posts_dataset(tmp_path)
    png = tmp_path / "h.png"
    # matplotlib made unimportable in a fresh interpreter, as on an install without the extra.
    code = (
        "import sys; sys.modules['matplotlib'] = None; from runners.cli import main; "
        f"sys.exit(main(['inspect', {url!r}, '--histogram', {str(png)!r}]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and not png.exists(), out.stderr
    assert out.stderr.count("\n") == 1, out.stderr
    assert "--histogram: plots need matplotlib: pip install 'shardsmith[plots]'" in out.stderr

    done = subprocess.run(
        [sys.executable, "-m", "runners.cli", "inspect", url, "--histogram", str(png)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "histogram: " in done.stdout and "12 values of text length" in done.stdout
    assert Image.open(png).size == (800, 400)
