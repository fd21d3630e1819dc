"""Hostile camera files: each gives the windows it can or is rejected with a reason, and never
raises out of the session, hangs, crashes the interpreter, allocates the frames an absurd header
claims, opens another file or URL, or takes anything from the other cameras.

The corpora are made here from one tiny clip per container (64x48, 2 s, 10 fps; MP4 with ``moov``
last and first, Matroska/HEVC, AVI/MPEG-4): the clip cut at every few bytes, seeded bit flips in
its header and its payload, absurd declared sizes, lying durations, clocks and extensions, HLS
playlists and concat lists, files without video, FIFOs. Each hostile file is the front camera of a
session whose rear camera is good: sampling at twice the frame rate takes every frame, so the
rear camera must give all its 20 frames, each showing its own time.
"""

from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from tablegen import read_version
from videogen import (
    annexb_with_sps_size,
    encode_audio_only,
    encode_clip,
    mp4_box,
    mp4_with_inband_sps,
    mp4_with_sps_size,
    patch_mp4,
    set_mp4_duration,
)

from catalog import Dataset
from transforms.fleet.discover import SessionSpec
from transforms.fleet.session import FleetOptions, ingest_session
from transforms.fleet.video import CameraFile
from transforms.samples import read_clock

# The thread method leaves SIGALRM to the per-session deadline below.
pytestmark = pytest.mark.timeout(180, method="thread")

BIN = Path(sys.executable).parent / "shardsmith"
PTS_MS = list(range(0, 2000, 100))  # 2 s at 10 fps
T0 = datetime(2026, 11, 20, 10, tzinfo=timezone.utc)
T0_US = int(T0.timestamp() * 1e6)
SESSION = "2026-11-20T10-00-00Z"
# 20 samples a second over 10 fps cameras: every frame is the nearest one to some sample.
OPTIONS = FleetOptions(window_s=1.0, fps=20.0, size=(64, 48))
REASONS = {
    "empty_file",
    "not_a_file",
    "unsupported_container",
    "no_video_stream",
    "unsupported_codec",
    "frame_too_large",
    "open_error",
    "decode_error",
    "truncated",
    "corrupt_frames",
    "bad_timestamps",
    "no_frames",
    "sei_invalid",  # a flipped bit in a Tesla SEI message: its frame still counts
}
CONTAINERS = {  # name: (file name, encode_clip options); H.264/HEVC carry Tesla SEI per frame
    "mp4": ("front.mp4", {"sei": True}),
    "faststart": ("front.mp4", {"faststart": True, "sei": True}),
    "mkv": ("front.mkv", {"fmt": "matroska", "codec": "libx265", "sei": True}),
    "avi": ("front.avi", {"fmt": "avi", "codec": "mpeg4"}),
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, bytes]:
    """Each clip encoded once: the four front containers, the good rear camera, and a raw
    H.264 stream."""
    d = tmp_path_factory.mktemp("clips")
    out = {}
    for name, (file, kw) in {**CONTAINERS, "rear": ("rear.mp4", {"camera": "rear"})}.items():
        path = d / f"{name}-{file}"
        encode_clip(path, PTS_MS, size=(64, 48), creation_time="2026-11-20T10:00:00Z", **kw)
        out[name] = path.read_bytes()
    encode_clip(d / "raw.h264", PTS_MS, size=(64, 48), fmt="h264", sei=True)
    out["h264"] = (d / "raw.h264").read_bytes()
    return out


def test_the_corpus_carries_tesla_sei(clips, tmp_path):
    """The H.264/HEVC clips the suite damages carry SEI on every frame, as Tesla's do."""
    for name in ("mp4", "faststart", "mkv", "h264"):
        path = tmp_path / f"{name}.{'h264' if name == 'h264' else 'bin'}"
        path.write_bytes(clips[name])
        cf = CameraFile(str(path), {}, 0, raw_fps=10)
        try:
            seqs = sorted(m["frame_seq_no"] for _, m in cf.sei)
            assert seqs == list(range(1, len(PTS_MS) + 1)) and cf.sei_invalid == [], name
        finally:
            cf.close()


# -- Running one session: front camera hostile, rear camera good. --


class Hang(Exception):
    pass


@contextmanager
def _deadline(seconds: float, what: str):
    def fire(signum, frame):
        raise Hang(f"{what}: still running after {seconds}s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@dataclass
class Outcome:
    front: str
    rear: str
    rows: list[dict] = field(default_factory=list)
    rejects: list[dict] = field(default_factory=list)
    records_in: int = 0
    # camera -> {(ms after T0 by frame_ts_us, ms read from the pixels)}
    frames: dict[str, set[tuple[int, int]]] = field(default_factory=dict)

    def clocks(self, camera: str) -> set[int]:
        return {clock for _, clock in self.frames.get(camera, set())}

    def file_rejects(self) -> list[dict]:
        """Rejects about the front file itself (not about a window)."""
        return [
            r
            for r in self.rejects
            if r["source_uri"] == self.front and not r["locator"].startswith("window")
        ]


def _session_dir(root: Path) -> Path:
    d = root / "veh" / SESSION
    d.mkdir(parents=True, exist_ok=True)
    return d


def _run(root: Path, front_name: str, front: bytes | None, rear: bytes, what: str) -> Outcome:
    """Ingest a session of ``front`` (written unless None: already in place) and ``rear``."""
    d = _session_dir(root)
    for old in d.iterdir():
        if old.name != front_name or front is not None:
            old.unlink()
    if front is not None:
        (d / front_name).write_bytes(front)
    (d / "rear.mp4").write_bytes(rear)
    out = Outcome(str(d / front_name), str(d / "rear.mp4"))
    spec = SessionSpec(
        "generic", "veh", SESSION, cameras={"front": [out.front], "rear": [out.rear]}, name_time=T0
    )
    with _deadline(20, what):
        pieces = list(ingest_session(spec, OPTIONS, {}))
    for piece in pieces:
        out.records_in += piece.tally["records_in"]
        out.rejects += piece.rejects
        if piece.row is None:
            continue
        out.rows.append(piece.row)
        for cam in piece.row["cameras"]:
            seen = out.frames.setdefault(cam["camera"], set())
            for ts, jpeg in zip(cam["frame_ts_us"], cam["frames"], strict=True):
                rgb = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))
                seen.add(((ts - T0_US) // 1000, read_clock(rgb)))
    return out


def _check(out: Outcome, what: str) -> None:
    """Nothing lost, every reject explained, the good camera untouched."""
    assert out.records_in == len(out.rows) + len(out.rejects), what
    for r in out.rejects:
        assert set(r) == {"source_uri", "locator", "reason", "message"}, (what, r)
        assert all(isinstance(v, str) and v for v in r.values()), (what, r)
        assert r["reason"] in REASONS, (what, r)
        assert r["source_uri"] != out.rear, (what, r)
        if r["locator"].startswith("t="):
            float(r["locator"][2:-1])  # the time in the file where it breaks
        if r["reason"] in ("open_error", "decode_error"):
            assert "Error" in r["message"], (what, r)  # the decoder's own words
    assert out.frames["rear"] == {(ms, ms) for ms in PTS_MS}, what


def _check_cut(out: Outcome, what: str) -> None:
    """The front file's frames before the cut are kept, each the frame it claims to be; if any
    is missing, the file is rejected with where it breaks off."""
    front = out.frames.get("front", set())
    assert all(ts == clock for ts, clock in front), what
    if len(front) < len(PTS_MS):
        assert out.file_rejects(), (what, "front frames lost without a reject")


# -- 1. Every truncation point. --


def _regions(name: str, data: bytes) -> tuple[tuple[int, int], tuple[int, int]]:
    """Where the container's header and its frames' payload lie: ``(start, end)`` each."""
    if name in ("mp4", "faststart"):
        moov, mdat = mp4_box(data, "moov"), mp4_box(data, "mdat")
        return (moov[0], moov[0] + moov[1]), (mdat[0] + 8, mdat[0] + mdat[1])
    first = data.index(b"\x1f\x43\xb6\x75" if name == "mkv" else b"movi")  # Cluster / movi
    return (0, first), (first, len(data))


def _cuts(name: str, data: bytes) -> list[int]:
    n = len(data)
    (start, end), _ = _regions(name, data)
    spread = {n * i // 30 for i in range(1, 30)}
    header = {start + (end - start) * i // 8 for i in range(8)}
    edges = {1, 4, 8, 12, 16, 33, n - 64, n - 16, n - 8, n - 2, n - 1}
    return sorted(c for c in spread | header | edges if 0 < c < n)


@pytest.mark.parametrize("name", CONTAINERS)
def test_every_truncation_point(clips, tmp_path, name):
    front_name, _ = CONTAINERS[name]
    data = clips[name]
    cuts = _cuts(name, data)
    partial = 0
    for cut in cuts:
        what = f"{name} cut at {cut} of {len(data)}"
        out = _run(tmp_path, front_name, data[:cut], clips["rear"], what)
        _check(out, what)
        _check_cut(out, what)
        partial += 0 < len(out.clocks("front")) < len(PTS_MS)
    assert len(cuts) >= 40
    # The corpus does reach the frames-before-the-cut case (with moov last, a cut loses the index).
    assert partial >= (0 if name == "mp4" else 5)


# -- 2. Seeded bit flips, in the header and in the payload. --


def _flipped(name: str, data: bytes, variant: int) -> bytes:
    """1-20 random bits flipped, in the header for even variants, in the payload for odd ones."""
    rng = random.Random(f"{name}/{variant}")
    lo, hi = _regions(name, data)[variant % 2]
    out = bytearray(data)
    for _ in range(rng.randint(1, 20)):
        out[rng.randrange(lo, hi)] ^= 1 << rng.randrange(8)
    return bytes(out)


@pytest.mark.parametrize("name", CONTAINERS)
def test_random_bit_flips(clips, tmp_path, name):
    """Half the variants flip 1-20 bits of the header, half of the payload. Decoders conceal
    damaged slices without an error, so a flipped frame may show wrong pixels or not come out
    at all (the row counts it in ``dropped_frames``): what must hold is everything else."""
    front_name, _ = CONTAINERS[name]
    outcomes = []
    for variant in range(50):
        what = f"{name} bit flips, variant {variant}"
        out = _run(tmp_path, front_name, _flipped(name, clips[name], variant), clips["rear"], what)
        _check(out, what)
        outcomes.append(bool(out.file_rejects()))
    assert 0 < sum(outcomes) < len(outcomes)  # some flips are refused, some are read


# -- 3. to 5. Absurd sizes, lying headers and names, playlists, no video, non-files. --


def _hls(path: Path, clips) -> None:
    target = path.parent.parent / "elsewhere.mp4"
    target.write_bytes(clips["mp4"])
    path.write_text(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n"
        f"#EXTINF:2.0,\nfile://{target}\n#EXTINF:2.0,\n/etc/passwd\n#EXT-X-ENDLIST\n"
    )


def _subtitles_only(path: Path, clips) -> None:
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_mux_stream("mov_text")
        stream.time_base = Fraction(1, 1000)
        for i in range(4):
            text = f"frame {i}".encode()
            packet = av.Packet(len(text).to_bytes(2, "big") + text)
            packet.pts = packet.dts = i * 500
            packet.time_base, packet.stream = stream.time_base, stream
            out.mux(packet)


def _jpeg(path: Path, clips) -> None:
    Image.new("RGB", (64, 48), (200, 10, 10)).save(path, "JPEG")


def _patched(clip: str, *edits):
    """A maker writing ``clip`` with ``patch_mp4`` edits ``(box, at, value, width)``."""

    def make(path: Path, clips) -> None:
        data = clips[clip]
        for box, at, value, width in edits:
            data = patch_mp4(data, box, at, value, width)
        path.write_bytes(data)

    return make


def _made(transform):
    """A maker writing ``transform(clips)``."""
    return lambda path, clips: path.write_bytes(transform(clips))


def _durations(value: int):
    return _made(
        lambda c: set_mp4_duration(
            set_mp4_duration(c["mp4"], "moov/mvhd", value), "moov/trak/mdia/mdhd", value
        )
    )


AVC1 = "moov/trak/mdia/minf/stbl/stsd/avc1"
TKHD = "moov/trak/tkhd"
# case: (front file name, make(path, clips), the front file's reject reasons, its frames kept)
ODD = {
    "mvhd+mdhd duration 0": ("front.mp4", _durations(0), set(), "all"),
    "mvhd+mdhd duration 2^32-1": ("front.mp4", _durations(2**32 - 1), set(), "all"),
    "mvhd+mdhd duration 2^64-1": ("front.mp4", _durations(2**64 - 1), set(), "all"),
    "mdhd timescale 1 (frames 1600 s apart)": (
        "front.mp4",
        _patched("mp4", ("moov/trak/mdia/mdhd", 20, 1, 4)),
        # Read in that timescale, the edit list's start (3200) hides the frames after the
        # first: FFmpeg flags them discarded, so no jumping clock is left to cut.
        {"truncated"},
        "some",
    ),
    "avcC SPS 16000x16000": (
        "front.mp4",
        _made(lambda c: mp4_with_sps_size(c["mp4"], 16000, 16000)),
        {"frame_too_large"},
        "none",
    ),
    "avcC SPS 65520x65520 (over FFmpeg's own limit)": (
        "front.mp4",
        _made(lambda c: mp4_with_sps_size(c["mp4"], 65520, 65520)),
        {"decode_error"},
        "none",
    ),
    "in-band SPS 16000x16000 at 1 s": (
        "front.mp4",
        _made(lambda c: mp4_with_inband_sps(c["mp4"], 16000, 16000, 10)),
        {"decode_error"},
        "some",
    ),
    "raw H.264, SPS 16000x16000": (
        "front.h264",
        _made(lambda c: annexb_with_sps_size(c["h264"], 16000, 16000)),
        {"frame_too_large"},
        "none",
    ),
    "stss: the first keyframe is sample 129 of 20 (no seek lands)": (
        "front.mp4",
        _patched("mp4", ("moov/trak/mdia/minf/stbl/stss", 16, 129, 4)),
        {"decode_error"},
        "none",
    ),
    # The decoder's size wins over the sample entry's and the track's: these read normally.
    "sample entry 65535x65535": (
        "front.mp4",
        _patched("mp4", (AVC1, 32, 65535, 2), (AVC1, 34, 65535, 2)),
        set(),
        "all",
    ),
    "tkhd 65535x65535": (
        "front.mp4",
        _patched("mp4", (TKHD, 84, 65535 << 16, 4), (TKHD, 88, 65535 << 16, 4)),
        set(),
        "all",
    ),
    # The demuxer comes from the bytes, never the name: these read as what they are.
    "MKV named .mp4": ("front.mp4", _made(lambda c: c["mkv"]), set(), "all"),
    "AVI named .mov": ("front.mov", _made(lambda c: c["avi"]), set(), "all"),
    "JPEG named .mp4": ("front.mp4", _jpeg, {"unsupported_container"}, "none"),
    "HLS playlist named .mp4": ("front.mp4", _hls, {"unsupported_container"}, "none"),
    "ffconcat list named .mp4": (
        "front.mp4",
        lambda p, c: p.write_text("ffconcat version 1.0\nfile '/etc/passwd'\n"),
        {"unsupported_container"},
        "none",
    ),
    "audio-only MP4": (
        "front.mp4",
        lambda p, c: encode_audio_only(p),
        {"no_video_stream"},
        "none",
    ),
    "M4A named .mp4": (
        "front.mp4",
        lambda p, c: encode_audio_only(p, fmt="ipod"),
        {"no_video_stream"},
        "none",
    ),
    "subtitles-only MP4": ("front.mp4", _subtitles_only, {"no_video_stream"}, "none"),
    "empty file": ("front.mp4", lambda p, c: p.write_bytes(b""), {"empty_file"}, "none"),
    "FIFO named .mp4": ("front.mp4", lambda p, c: os.mkfifo(p), {"not_a_file"}, "none"),
    "symlink to /dev/zero": (
        "front.mp4",
        lambda p, c: p.symlink_to("/dev/zero"),
        {"not_a_file"},
        "none",
    ),
}


@pytest.mark.parametrize("case", ODD)
def test_hostile_headers_names_and_files_next_to_a_good_camera(clips, tmp_path, case):
    front_name, make, reasons, kept = ODD[case]
    make(_session_dir(tmp_path) / front_name, clips)
    out = _run(tmp_path, front_name, None, clips["rear"], case)
    _check(out, case)
    assert {r["reason"] for r in out.file_rejects()} == reasons
    front = out.frames.get("front", set())
    assert all(ts == clock for ts, clock in front), case
    if kept == "all":
        assert out.clocks("front") == set(PTS_MS)
    elif kept == "none":
        assert not front
    else:
        assert 0 < len(front) < len(PTS_MS)


# Imports once, then opens and decodes each file in a forked child: a child's peak RSS starts
# from what it shares with the parent, so each file's growth is measured on its own.
_PROBE = r"""
import json, os, resource, sys
from transforms.fleet.video import CameraFile, VideoError

for path in sys.argv[1:]:
    pid = os.fork()
    if pid:
        assert os.waitpid(pid, 0)[1] == 0, path
        continue
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = {"path": path, "reason": None, "frames": 0}
    try:
        cf = CameraFile(path, {}, 0)
        try:
            for _ in cf.decode(cf.pts.tolist(), (64, 48)):
                out["frames"] += 1
        except VideoError as exc:
            out.update(reason=exc.reason, message=str(exc), at_s=exc.at_s)
        cf.close()
    except VideoError as exc:
        out.update(reason=exc.reason, message=str(exc))
    out["grew_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    print(json.dumps(out), flush=True)
    os._exit(0)
"""


def test_absurd_sizes_are_refused_before_a_frame_is_allocated(clips, tmp_path):
    """Each file opened and every frame decoded in a process of its own, whose peak RSS must stay
    far below one 16000x16000 frame (384 MB in YUV 4:2:0): FFmpeg's per-macroblock tables, never
    a frame. Before the decoder got ``max_pixels`` the open grew by about 700 MB and the in-band
    switch by about 2.7 GB; now the good clip grows by about 30 MB, the others by 60-80 MB more."""
    cases = {  # file: (reason, frames decoded)
        "good": (None, range(20, 21)),
        "avcC SPS 16000x16000": ("frame_too_large", range(1)),
        "raw H.264, SPS 16000x16000": ("frame_too_large", range(1)),
        "in-band SPS 16000x16000 at 1 s": ("decode_error", range(1, 11)),  # those before 1 s
    }
    paths = []
    for i, case in enumerate(cases):
        path = tmp_path / f"{i}-{ODD[case][0] if case in ODD else 'good.mp4'}"
        if case in ODD:
            ODD[case][1](path, clips)
        else:
            path.write_bytes(clips["mp4"])
        paths.append(str(path))
    run = subprocess.run(
        [sys.executable, "-c", _PROBE, *paths], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr[-2000:]
    outs = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert [o["path"] for o in outs] == paths
    good = outs[0]["grew_mb"]
    for (case, (reason, frames)), out in zip(cases.items(), outs, strict=True):
        assert out["reason"] == reason and out["frames"] in frames, (case, out)
        if reason == "frame_too_large":
            assert "16000x16000" in out["message"]
        if reason == "decode_error":
            assert out["at_s"] == pytest.approx(1.0) and "Error" in out["message"]
        assert out["grew_mb"] < good + 100, (case, out)


def test_a_clock_years_off_costs_one_record_not_millions(clips, tmp_path):
    front = patch_mp4(clips["mp4"], "moov/mvhd", 12, 2**32 - 1, 4)  # creation_time 2040-02-06
    what = "front camera's clock in 2040"
    started = time.monotonic()
    out = _run(tmp_path, "front.mp4", front, clips["rear"], what)
    assert time.monotonic() - started < 10
    _check(out, what)
    (gap,) = out.rejects  # the 420 million empty 1 s windows between 2026 and 2040
    assert gap["reason"] == "no_frames" and gap["locator"].startswith("windows 2-")
    assert len(out.rows) == 4  # the rear camera's two windows, then the front camera's two
    offset_ms = int(
        (datetime(2040, 2, 6, 6, 28, 15, tzinfo=timezone.utc) - T0).total_seconds() * 1000
    )
    assert out.frames["front"] == {(offset_ms + ms, ms) for ms in PTS_MS}


def test_fifo_sidecars_are_rejects(clips, tmp_path):
    d = _session_dir(tmp_path)
    (d / "front.mp4").write_bytes(clips["mp4"])
    (d / "rear.mp4").write_bytes(clips["rear"])
    os.mkfifo(d / "telemetry.csv")
    os.mkfifo(d / "event.json")
    spec = SessionSpec(
        "generic",
        "veh",
        SESSION,
        cameras={"front": [str(d / "front.mp4")], "rear": [str(d / "rear.mp4")]},
        telemetry=str(d / "telemetry.csv"),
        event=str(d / "event.json"),
        name_time=T0,
    )
    with _deadline(20, "FIFO sidecars"):
        pieces = list(ingest_session(spec, OPTIONS, {}))
    rejects = [r for p in pieces for r in p.rejects]
    assert sorted(r["reason"] for r in rejects) == ["event_json_invalid", "telemetry_invalid"]
    assert all("not a regular file" in r["message"] for r in rejects)
    assert sum(p.row is not None for p in pieces) == 2


# -- 4. Playlists and concat lists never reach FFmpeg's protocol layer. --


class _OpenDetector:
    """A FIFO that tells whether anyone opened it for reading: a writer thread waits in open()
    until a reader comes, then closes (the reader sees end of file, nothing blocks)."""

    def __init__(self, path: Path):
        self.path, self.opened = path, False
        if not path.exists():
            os.mkfifo(path)

    def _writer(self):
        os.close(os.open(self.path, os.O_WRONLY))
        self.opened = not self._releasing

    def __enter__(self):
        self._releasing = False
        self._thread = threading.Thread(target=self._writer, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._thread.join(0.5)  # a reader that came has released the writer by now
        if self._thread.is_alive():
            self._releasing = True
            os.close(os.open(self.path, os.O_RDONLY | os.O_NONBLOCK))
            self._thread.join(5)
        assert not self._thread.is_alive()


def test_playlists_and_concat_lists_never_open_what_they_name(clips, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    fifo = outside / "segment.ts"
    hls = (
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n"
        f"#EXTINF:2.0,\nfile://{fifo}\n#EXT-X-ENDLIST\n"
    )
    # Controls: FFmpeg left to pick the demuxer and open files itself does open the FIFO.
    (outside / "list.m3u8").write_text(hls)
    (outside / "list.ffconcat").write_text("ffconcat version 1.0\nfile 'segment.ts'\n")
    for control, fmt in (("list.m3u8", "hls"), ("list.ffconcat", None)):
        with _OpenDetector(fifo) as seen, pytest.raises(av.error.FFmpegError):
            av.open(str(outside / control), format=fmt, timeout=5)
        assert seen.opened, control
    lists = {
        "hls.mp4": hls,
        "concat.mp4": f"ffconcat version 1.0\nfile '{fifo}'\n",
        "relative-concat.mp4": "ffconcat version 1.0\nfile '../../outside/segment.ts'\n",
        "hls-behind-a-start-code.mp4": "\x00\x00\x00\x01" + hls,  # sniffed as raw H.264
    }
    for name, text in lists.items():
        with _OpenDetector(fifo) as seen:
            out = _run(tmp_path, name, text.encode(), clips["rear"], name)
        _check(out, name)
        assert out.file_rejects() and not seen.opened, name


# -- 1.-5. through the CLI, in worker processes: no crash takes the run down. --


def test_cli_ingests_a_hostile_corpus_and_keeps_every_good_frame(clips, tmp_path):
    root = tmp_path / "fleet"
    expected = {}  # vehicle -> the front file's reject reasons, when known exactly

    def session(vehicle: str) -> Path:
        d = root / vehicle / SESSION
        d.mkdir(parents=True)
        (d / "rear.mp4").write_bytes(clips["rear"])
        return d

    d = session("good")
    (d / "front.mp4").write_bytes(clips["mp4"])
    expected["good"] = set()
    for name, (front_name, _) in CONTAINERS.items():
        for cut in _cuts(name, clips[name])[::10]:
            (session(f"cut-{name}-{cut}") / front_name).write_bytes(clips[name][:cut])
        for variant in range(0, 50, 9):
            data = _flipped(name, clips[name], variant)
            (session(f"flip-{name}-{variant}") / front_name).write_bytes(data)
    fifo = tmp_path / "never-opened.ts"  # no writer: whoever opens it blocks for ever
    os.mkfifo(fifo)
    for i, (front_name, make, reasons, _) in enumerate(ODD.values()):
        make(session(f"odd-{i:02d}") / front_name, clips)
        expected[f"odd-{i:02d}"] = reasons
    (session("hls-to-fifo") / "front.mp4").write_text(
        f"#EXTM3U\n#EXTINF:2.0,\nfile://{fifo}\n#EXT-X-ENDLIST\n"
    )
    (session("concat-to-fifo") / "front.mp4").write_text(f"ffconcat version 1.0\nfile '{fifo}'\n")
    dataset = tmp_path / "clips"
    run = subprocess.run(
        [
            str(BIN),
            "ingest",
            "fleet",
            str(root),
            "--to",
            str(dataset),
            "--window",
            "1",
            "--fps",
            "20",
            "--size",
            "64x48",
            "--max-reject-rate",
            "1",
            "--workers",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    ds = Dataset.open(str(dataset))
    report = ds.manifest().report
    assert report["records_in"] == report["records_written"] + report["records_rejected"]
    rows = read_version(ds).to_pylist()
    by_vehicle: dict[str, dict[str, set]] = {}
    for row in rows:
        for cam in row["cameras"]:
            seen = by_vehicle.setdefault(row["vehicle_id"], {}).setdefault(cam["camera"], set())
            for ts, jpeg in zip(cam["frame_ts_us"], cam["frames"], strict=True):
                rgb = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))
                seen.add(((ts - T0_US) // 1000, read_clock(rgb)))
    vehicles = {p.name for p in root.iterdir()}
    all_frames = {(ms, ms) for ms in PTS_MS}
    for vehicle in vehicles:  # every good camera of every session, whole
        assert by_vehicle[vehicle]["rear"] == all_frames, vehicle
    assert by_vehicle["good"]["front"] == all_frames
    assert sorted(r["clip_id"] for r in rows if r["vehicle_id"] == "good") == [
        f"good/{SESSION}/{k:05d}" for k in range(2)
    ]
    rejects = []
    for entry in ds.manifest().rejects:
        rejects += pq.read_table(ds.path(entry.path)).to_pylist()
    assert len(rejects) == report["records_rejected"]
    for vehicle, reasons in expected.items():
        got = {
            r["reason"]
            for r in rejects
            if f"/{vehicle}/" in r["source_uri"] and not r["locator"].startswith("window")
        }
        assert got == reasons, vehicle
    assert {r["reason"] for r in rejects if "-to-fifo/" in r["source_uri"]} == {
        "unsupported_container"
    }
