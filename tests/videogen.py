"""Camera clips made inside tests: any codec and container PyAV can write, frames that show
their own time (``read_clock``), optional blur, variable frame rate, faststart."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np

from transforms.samples.scene import Scene
from transforms.samples.sei import escape_emulation, packet_with_sei
from transforms.samples.video import rgb_to_yuv420p


def encode_clip(
    path,
    pts_ms,
    *,
    fmt="mp4",
    codec="libx264",
    size=(160, 120),
    fps=10,
    creation_time=None,
    camera="front",
    blur=False,
    faststart=False,
    sei=False,
):
    """Encode frames at ``pts_ms`` (ms since the session start, also drawn as the clock);
    ``sei``: each frame carries Tesla SEI telemetry (H.264/HEVC)."""
    w, h = size
    scene = Scene(w, h, camera, np.random.default_rng(1))
    frame_based = fmt == "avi"  # AVI knows only a constant frame rate
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", format=fmt, options=options) as out:
        if creation_time:
            out.metadata["creation_time"] = creation_time
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        tb = Fraction(1, fps) if frame_based else Fraction(1, 1000)
        stream.time_base = tb
        stream.codec_context.time_base = tb
        stream.codec_context.gop_size = fps
        for ms in pts_ms:
            rgb = scene.frame(ms, ms / 100.0, 0.0, ms / 1000)
            if blur:  # 4x4 box blur, the clock band kept sharp so the time still reads
                band = h // 6
                body = rgb[band:].astype(np.float32)
                k = 4
                hh, ww = (body.shape[0] // k) * k, (w // k) * k
                small = body[:hh, :ww].reshape(hh // k, k, ww // k, k, 3).mean(axis=(1, 3))
                rgb[band : band + hh, :ww] = np.repeat(np.repeat(small, k, 0), k, 1).astype(
                    np.uint8
                )
            frame = av.VideoFrame.from_ndarray(rgb_to_yuv420p(rgb), format="yuv420p")
            frame.pts = round(ms * fps / 1000) if frame_based else ms
            frame.time_base = tb
            for packet in stream.encode(frame):
                out.mux(_sei(packet, sei, codec, tb, pts_ms))
        for packet in stream.encode():
            out.mux(_sei(packet, sei, codec, tb, pts_ms))


def _sei(packet, sei, codec, tb, pts_ms):
    """``packet`` carrying Tesla SEI when ``sei`` (``frame_seq_no``: the frame's index + 1)."""
    if not sei or packet.pts is None:
        return packet
    ms = round(packet.pts * tb * 1000)
    i = pts_ms.index(ms) if ms in pts_ms else 0
    fields = {"frame_seq_no": i + 1, "vehicle_speed_mps": ms / 100, "latitude_deg": 37.0}
    return packet_with_sei(packet, fields, hevc=codec == "libx265")


def encode_audio_only(path, seconds=1.0, *, fmt="mp4"):
    """A file with one AAC audio stream and no video (an M4A, whatever the name says)."""
    rate = 8000
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream("aac", rate=rate, layout="mono")
        t = np.arange(int(seconds * rate)) / rate
        tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
        for i in range(0, tone.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(tone[:, i : i + 1024], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = rate, i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


# -- Editing MP4 boxes in place: tests make hostile headers out of good files. --

_CONTAINER_BOXES = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf", b"udta"}


def mp4_boxes(data: bytes, start: int = 0, end: int | None = None, parents=()):
    """Every box as ``(path, offset, size)``, depth first; ``path`` like ``"moov/trak/tkhd"``.

    Descends into the plain container boxes and into ``stsd`` (whose sample entries, e.g.
    ``avc1``, hold ``avcC``)."""
    end = len(data) if end is None else end
    at = start
    while at + 8 <= end:
        size = int.from_bytes(data[at : at + 4], "big")
        kind = data[at + 4 : at + 8]
        header = 8
        if size == 1:
            size, header = int.from_bytes(data[at + 8 : at + 16], "big"), 16
        elif size == 0:
            size = end - at
        if size < header or at + size > end:
            return
        path = (*parents, kind.decode("latin-1"))
        yield "/".join(path), at, size
        if kind in _CONTAINER_BOXES:
            yield from mp4_boxes(data, at + header, at + size, path)
        elif kind == b"stsd":
            yield from mp4_boxes(data, at + header + 8, at + size, path)
        elif kind in (b"avc1", b"hvc1", b"hev1", b"mp4v"):
            yield from mp4_boxes(data, at + header + 78, at + size, path)
        at += size


def mp4_box(data: bytes, path: str) -> tuple[int, int]:
    """``(offset, size)`` of the first box at ``path``."""
    for p, at, size in mp4_boxes(data):
        if p == path:
            return at, size
    raise KeyError(path)


def patch_mp4(data: bytes, path: str, field_at: int, value: int, width: int) -> bytes:
    """``data`` with the big-endian ``width``-byte field ``field_at`` bytes into box ``path``
    (counted from the box's start) set to ``value``."""
    at, _ = mp4_box(data, path)
    out = bytearray(data)
    out[at + field_at : at + field_at + width] = value.to_bytes(width, "big")
    return bytes(out)


def replace_mp4_box(data: bytes, path: str, body: bytes) -> bytes:
    """``data`` with the contents of box ``path`` (after its 8-byte header) replaced by
    ``body``; the sizes of the box and its parents follow. ``moov`` must come after ``mdat``,
    so no chunk offset moves."""
    assert mp4_box(data, "moov")[0] > mp4_box(data, "mdat")[0], "needs moov after mdat"
    at, size = mp4_box(data, path)
    grown = len(body) + 8 - size
    out = bytearray(data[:at] + (size + grown).to_bytes(4, "big") + data[at + 4 : at + 8])
    out += body + data[at + size :]
    for parent, p_at, p_size in mp4_boxes(data):
        if path.startswith(parent + "/"):
            out[p_at : p_at + 4] = (p_size + grown).to_bytes(4, "big")
    return bytes(out)


def set_mp4_duration(data: bytes, path: str, value: int) -> bytes:
    """Set the duration of the ``mvhd``/``mdhd`` box at ``path``; a value that needs 64 bits
    turns a version-0 box into version 1 (see ``replace_mp4_box``)."""
    at, size = mp4_box(data, path)
    if data[at + 8] == 1:
        return patch_mp4(data, path, 32, value, 8)
    if value < 2**32:
        return patch_mp4(data, path, 24, value, 4)
    body = data[at + 12 : at + size]  # ctime, mtime, timescale, duration, the rest
    zero = bytes(4)
    new = b"\x01" + data[at + 9 : at + 12] + zero + body[:4] + zero + body[4:8] + body[8:12]
    return replace_mp4_box(data, path, new + value.to_bytes(8, "big") + body[16:])


# -- Rewriting an H.264 SPS: a clip that declares any frame size. --


class _Bits:
    def __init__(self, data: bytes):
        self.bits = "".join(f"{b:08b}" for b in data)
        self.at = 0

    def u(self, n: int) -> int:
        value = int(self.bits[self.at : self.at + n] or "0", 2)
        self.at += n
        return value

    def ue(self) -> int:
        zeros = 0
        while self.bits[self.at] == "0":
            zeros += 1
            self.at += 1
        self.at += 1
        return (1 << zeros) - 1 + self.u(zeros)


def _ue(value: int) -> str:
    code = f"{value + 1:b}"
    return "0" * (len(code) - 1) + code


def _unescape(nal: bytes) -> bytes:
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


def sps_with_size(sps: bytes, width: int, height: int) -> bytes:
    """An H.264 SPS NAL unit (no start code) declaring ``width`` x ``height`` (multiples of 16,
    no cropping); the rest of the SPS is kept."""
    bits = _Bits(_unescape(sps))
    bits.u(8)  # NAL header
    profile = bits.u(8)
    bits.u(16)  # constraint flags, level
    bits.ue()  # seq_parameter_set_id
    if profile in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
        if bits.ue() == 3:  # chroma_format_idc
            bits.u(1)
        bits.ue(), bits.ue()  # bit depths
        bits.u(1)
        assert bits.u(1) == 0, "scaling matrices are not supported"
    bits.ue()  # log2_max_frame_num_minus4
    poc_type = bits.ue()
    assert poc_type in (0, 2), "pic_order_cnt_type 1 is not supported"
    if poc_type == 0:
        bits.ue()
    bits.ue()  # max_num_ref_frames
    bits.u(1)  # gaps_in_frame_num_value_allowed_flag
    head = bits.bits[: bits.at]
    bits.ue(), bits.ue()  # the size, in macroblocks
    frame_mbs_only = bits.u(1)
    assert frame_mbs_only == 1
    direct = bits.u(1)  # direct_8x8_inference_flag
    if bits.u(1):  # frame_cropping_flag: dropped
        bits.ue(), bits.ue(), bits.ue(), bits.ue()
    tail = bits.bits[bits.at :].rstrip("0")[:-1]  # without the rbsp stop bit
    out = head + _ue(width // 16 - 1) + _ue(height // 16 - 1) + "1" + str(direct) + "0" + tail
    out += "1"
    out += "0" * (-len(out) % 8)
    return escape_emulation(int(out, 2).to_bytes(len(out) // 8, "big"))


def mp4_with_sps_size(data: bytes, width: int, height: int) -> bytes:
    """An H.264 MP4 whose ``avcC`` SPS declares ``width`` x ``height`` (the sample entry keeps
    its own size: only the decoder sees the new one); see ``replace_mp4_box``."""
    path = "moov/trak/mdia/minf/stbl/stsd/avc1/avcC"
    at, size = mp4_box(data, path)
    body = data[at + 8 : at + size]
    assert body[5] & 0x1F == 1, "one SPS expected"
    sps_len = int.from_bytes(body[6:8], "big")
    sps = sps_with_size(body[8 : 8 + sps_len], width, height)
    new = body[:6] + len(sps).to_bytes(2, "big") + sps + body[8 + sps_len :]
    return replace_mp4_box(data, path, new)


def annexb_with_sps_size(data: bytes, width: int, height: int) -> bytes:
    """A raw H.264 (Annex B) stream whose SPS units declare ``width`` x ``height``."""
    parts = data.split(b"\x00\x00\x01")
    out = []
    for part in parts:
        if part and part[0] & 0x1F == 7:
            trail = len(part) - len(part.rstrip(b"\x00"))  # the next start code's leading zero
            part = sps_with_size(part[: len(part) - trail], width, height) + b"\x00" * trail
        out.append(part)
    return b"\x00\x00\x01".join(out)


def mp4_with_inband_sps(data: bytes, width: int, height: int, sample: int) -> bytes:
    """An H.264 MP4 (one chunk, ``moov`` after ``mdat``) whose ``sample`` starts with an
    in-band SPS declaring ``width`` x ``height``: the size changes in mid-stream."""
    stbl = "moov/trak/mdia/minf/stbl"
    at = mp4_box(data, f"{stbl}/stco")[0]
    assert int.from_bytes(data[at + 12 : at + 16], "big") == 1, "one chunk expected"
    chunk = int.from_bytes(data[at + 16 : at + 20], "big")
    at = mp4_box(data, f"{stbl}/stsz")[0]
    count = int.from_bytes(data[at + 16 : at + 20], "big")
    sizes = [int.from_bytes(data[at + 20 + 4 * i : at + 24 + 4 * i], "big") for i in range(count)]
    c_at = mp4_box(data, f"{stbl}/stsd/avc1/avcC")[0]
    sps_len = int.from_bytes(data[c_at + 14 : c_at + 16], "big")
    sps = sps_with_size(data[c_at + 16 : c_at + 16 + sps_len], width, height)
    pps_at = c_at + 16 + sps_len + 1  # a PPS too: a PPS binds the SPS current when it comes
    pps = data[pps_at + 2 : pps_at + 2 + int.from_bytes(data[pps_at : pps_at + 2], "big")]
    nal = b"".join(len(unit).to_bytes(4, "big") + unit for unit in (sps, pps))
    out = patch_mp4(data, f"{stbl}/stsz", 20 + 4 * sample, sizes[sample] + len(nal), 4)
    out = patch_mp4(out, "mdat", 0, mp4_box(data, "mdat")[1] + len(nal), 4)
    insert_at = chunk + sum(sizes[:sample])
    return out[:insert_at] + nal + out[insert_at:]
