"""Tesla's per-frame telemetry, read from the SEI NAL units of packets already demuxed.

Tesla cars (firmware 2025.44.25+, HW3+) put one SEI ``user_data_unregistered`` message before
each frame's slices: a 16-byte identifier (fifteen ``0x42`` bytes, then ``0x69``) followed by a
protobuf ``SeiMetadata`` message (github.com/teslamotors/dashcam, ``dashcam.proto``). Field
numbers, from that file:

====  ==========================  ======  ====  ==========================  ======
 1    version                     uint32   9    brake_applied               bool
 2    gear_state (enum)           enum    10    autopilot_state (enum)      enum
 3    frame_seq_no                uint64  11    latitude_deg                double
 4    vehicle_speed_mps           float   12    longitude_deg               double
 5    accelerator_pedal_position  float   13    heading_deg                 double
 6    steering_wheel_angle        float   14    linear_acceleration_mps2_x  double
 7    blinker_on_left             bool    15    linear_acceleration_mps2_y  double
 8    blinker_on_right            bool    16    linear_acceleration_mps2_z  double
====  ==========================  ======  ====  ==========================  ======

Only the header bytes of each NAL unit are looked at until an SEI unit is found, and the scan
of a packet stops at its first slice (an access unit's prefix SEI precedes its slices), so the
cost is a few byte reads per packet; nothing is decoded. Emulation-prevention bytes are removed
from an SEI unit before its messages are read, as Tesla's own extractor does.
"""

from __future__ import annotations

import struct

__all__ = [
    "AUTOPILOT",
    "FIELDS",
    "GEAR",
    "TESLA_SEI_UUID",
    "SeiError",
    "decode_metadata",
    "length_size",
    "packet_sei",
]

TESLA_SEI_UUID = b"\x42" * 15 + b"\x69"
GEAR = ("park", "drive", "reverse", "neutral")
AUTOPILOT = ("none", "self_driving", "autosteer", "tacc")

_USER_DATA_UNREGISTERED = 5
_HEAD = 1024  # bytes of an Annex-B packet looked at first
# field number -> (name, wire type); wire types: 0 varint, 1 fixed64, 5 fixed32.
FIELDS: dict[int, tuple[str, int]] = {
    1: ("version", 0),
    2: ("gear_state", 0),
    3: ("frame_seq_no", 0),
    4: ("vehicle_speed_mps", 5),
    5: ("accelerator_pedal_position", 5),
    6: ("steering_wheel_angle", 5),
    7: ("blinker_on_left", 0),
    8: ("blinker_on_right", 0),
    9: ("brake_applied", 0),
    10: ("autopilot_state", 0),
    11: ("latitude_deg", 1),
    12: ("longitude_deg", 1),
    13: ("heading_deg", 1),
    14: ("linear_acceleration_mps2_x", 1),
    15: ("linear_acceleration_mps2_y", 1),
    16: ("linear_acceleration_mps2_z", 1),
}
_BOOLS = {"blinker_on_left", "blinker_on_right", "brake_applied"}


class SeiError(ValueError):
    """A Tesla SEI message that cannot be read (the frame itself is unaffected)."""


def length_size(extradata: bytes | None, hevc: bool) -> int:
    """The NAL length-prefix size of an avcC (H.264) or hvcC (HEVC) configuration record, or
    0 when the stream has none (Annex-B start codes: MPEG-TS, raw streams)."""
    if not extradata or extradata[0] != 1:
        return 0
    at = 21 if hevc else 4
    if len(extradata) <= at:
        return 0
    return (extradata[at] & 3) + 1


def _is_vcl(header: int, hevc: bool) -> bool:
    return (header >> 1) & 0x3F < 32 if hevc else 1 <= header & 0x1F <= 5


def _is_prefix_sei(header: int, hevc: bool) -> bool:
    return (header >> 1) & 0x3F == 39 if hevc else header & 0x1F == 6


def packet_sei(data, size: int, hevc: bool) -> list[bytes]:
    """The Tesla payloads (after the 16-byte identifier, emulation prevention removed) of the
    SEI units of one packet; ``size`` is the NAL length-prefix size, 0 for Annex-B.

    Raises ``SeiError`` when a Tesla SEI message is cut short inside its unit.
    """
    view = memoryview(data)
    n = len(view)
    found: list[bytes] = []
    header_len = 2 if hevc else 1
    if size:
        at = 0
        while at + size < n:
            length = int.from_bytes(view[at : at + size], "big")
            start = at + size
            end = min(start + length, n)
            header = view[start]
            if _is_prefix_sei(header, hevc):
                found.extend(_sei_messages(bytes(view[start + header_len : end])))
            elif _is_vcl(header, hevc):
                break  # a prefix SEI never follows a slice of its access unit
            at = end
        return found
    # Annex-B: start codes are searched in a copy of the packet's head, which holds the SEI
    # units and the first slice's start; the rest is copied only if an SEI unit runs on.
    buf = bytes(view[:_HEAD])
    at = buf.find(b"\x00\x00\x01")
    while at >= 0 and at + 3 < n:
        start = at + 3
        if start >= len(buf):
            buf = bytes(view)
        header = buf[start]
        if _is_vcl(header, hevc):
            break
        nxt = buf.find(b"\x00\x00\x01", start)
        if nxt < 0 and len(buf) < n:
            buf = bytes(view)
            nxt = buf.find(b"\x00\x00\x01", start)
        if _is_prefix_sei(header, hevc):
            found.extend(_sei_messages(buf[start + header_len : n if nxt < 0 else nxt]))
        at = nxt
    return found


def _sei_messages(escaped: bytes) -> list[bytes]:
    """Tesla payloads among the SEI messages of one SEI unit's payload (after its header)."""
    if TESLA_SEI_UUID not in escaped:  # cheap: most SEI units (encoder info) are not Tesla's
        return []
    rbsp = escaped.replace(b"\x00\x00\x03", b"\x00\x00")
    out = []
    at, n = 0, len(rbsp)
    while at < n and rbsp[at:].rstrip(b"\x00") != b"\x80":  # 0x80: the unit's trailing bits
        ptype, at = _ff_coded(rbsp, at)
        psize, at = _ff_coded(rbsp, at)
        payload = rbsp[at : at + psize]
        at += psize
        if ptype != _USER_DATA_UNREGISTERED or not payload.startswith(TESLA_SEI_UUID[:15]):
            if len(payload) < psize and TESLA_SEI_UUID in payload:
                raise SeiError(f"SEI message of {psize} bytes cut short at {len(payload)}")
            continue
        if payload[:16] != TESLA_SEI_UUID:
            continue
        if len(payload) < psize:
            raise SeiError(f"SEI message of {psize} bytes cut short at {len(payload)}")
        out.append(payload[16:])
    return out


def _ff_coded(data: bytes, at: int) -> tuple[int, int]:
    """An SEI payload type or size: 0xFF bytes add 255 each, the first other byte ends it."""
    value = 0
    while at < len(data) and data[at] == 0xFF:
        value += 255
        at += 1
    if at >= len(data):
        raise SeiError("SEI message header runs past the end of its unit")
    return value + data[at], at + 1


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data):
            raise SeiError("protobuf varint runs past the end of the message")
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if not byte & 0x80:
            return value, at
        shift += 7
        if shift >= 64:
            raise SeiError("protobuf varint longer than 10 bytes")


def decode_metadata(message: bytes) -> dict[str, int | float | bool]:
    """Decode a ``SeiMetadata`` protobuf message by its wire format (fields absent from the
    message are absent from the dict; protobuf's default is 0/false). Unknown fields are
    skipped; a known field with another wire type, or a message cut short, is ``SeiError``.

    >>> decode_metadata(bytes([0x18, 0x07, 0x38, 0x01]))
    {'frame_seq_no': 7, 'blinker_on_left': True}
    """
    out: dict[str, int | float | bool] = {}
    at, n = 0, len(message)
    while at < n:
        key, at = _varint(message, at)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise SeiError("protobuf field number 0")
        known = FIELDS.get(number)
        if known is not None and known[1] != wire:
            raise SeiError(f"field {known[0]} has wire type {wire}, expected {known[1]}")
        if wire == 0:
            value, at = _varint(message, at)
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            if at + width > n:
                raise SeiError("protobuf fixed field runs past the end of the message")
            value = struct.unpack_from("<d" if wire == 1 else "<f", message, at)[0]
            at += width
        elif wire == 2:
            length, at = _varint(message, at)
            if at + length > n:
                raise SeiError("protobuf length-delimited field runs past the end")
            at += length
            continue
        else:
            raise SeiError(f"protobuf wire type {wire} (groups are not supported)")
        if known is None:
            continue
        name = known[0]
        out[name] = bool(value) if name in _BOOLS else value
    return out
