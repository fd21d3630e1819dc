"""Writing Tesla SEI telemetry into encoded H.264/HEVC packets, as Tesla cars do.

``tesla_sei_nal`` builds one SEI NAL unit (``user_data_unregistered``: the 16-byte Tesla
identifier, then a ``SeiMetadata`` protobuf message, field numbers as ``transforms.fleet.sei``)
with emulation-prevention bytes inserted; ``with_sei`` puts it into an Annex-B packet before the
frame's first slice. libx264 gives Annex-B packets and the MP4 muxer turns them into
length-prefixed ones, so an SEI put in before muxing lands in the file as Tesla's does.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

import av

from transforms.fleet.sei import FIELDS, TESLA_SEI_UUID

__all__ = ["encode_metadata", "escape_emulation", "packet_with_sei", "tesla_sei_nal", "with_sei"]

_NUMBERS = {name: (number, wire) for number, (name, wire) in FIELDS.items()}


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def encode_metadata(fields: Mapping[str, int | float | bool]) -> bytes:
    """A ``SeiMetadata`` protobuf message of ``fields`` (names as in dashcam.proto), in field
    number order; zero/false values are left out, as proto3 encoders do."""
    out = bytearray()
    for name, (number, wire) in sorted(_NUMBERS.items(), key=lambda item: item[1][0]):
        value = fields.get(name)
        if not value:
            continue
        out += _varint(number << 3 | wire)
        if wire == 0:
            out += _varint(int(value))
        else:
            out += struct.pack("<d" if wire == 1 else "<f", float(value))
    unknown = set(fields) - set(_NUMBERS)
    if unknown:
        raise ValueError(f"not SeiMetadata fields: {sorted(unknown)}")
    return bytes(out)


def escape_emulation(rbsp: bytes) -> bytes:
    """Insert emulation-prevention bytes: 0x03 after two zeros before any byte <= 3."""
    out = bytearray()
    zeros = 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def _ff(value: int) -> bytes:
    return b"\xff" * (value // 255) + bytes([value % 255])


def tesla_sei_nal(message: bytes, *, hevc: bool = False) -> bytes:
    """An SEI NAL unit (header included, no start code) carrying one Tesla message."""
    payload = TESLA_SEI_UUID + message
    rbsp = _ff(5) + _ff(len(payload)) + payload + b"\x80"
    header = b"\x4e\x01" if hevc else b"\x06"  # HEVC: prefix SEI (39), layer 0, tid 1
    return header + escape_emulation(rbsp)


def with_sei(packet: bytes, nal: bytes, *, hevc: bool = False) -> bytes:
    """``packet`` (Annex-B) with the SEI unit ``nal`` put before its first slice."""
    at = packet.find(b"\x00\x00\x01")
    while at >= 0:
        header = packet[at + 3]
        slice_ = (header >> 1) & 0x3F < 32 if hevc else 1 <= header & 0x1F <= 5
        if slice_:
            start = at - 1 if at > 0 and packet[at - 1] == 0 else at
            return packet[:start] + b"\x00\x00\x00\x01" + nal + packet[start:]
        at = packet.find(b"\x00\x00\x01", at + 3)
    raise ValueError("no slice in the packet")


def packet_with_sei(
    packet: av.Packet, fields: Mapping[str, int | float | bool] | bytes, *, hevc: bool = False
) -> av.Packet:
    """A copy of an encoder's (Annex-B) ``packet`` carrying Tesla SEI ``fields`` (or a
    message's bytes as they are, to make broken ones) before its slices; times, keyframe flag
    and stream kept, ready to mux."""
    message = fields if isinstance(fields, bytes) else encode_metadata(fields)
    out = av.Packet(with_sei(bytes(packet), tesla_sei_nal(message, hevc=hevc), hevc=hevc))
    out.pts, out.dts, out.time_base = packet.pts, packet.dts, packet.time_base
    out.is_keyframe = packet.is_keyframe
    out.stream = packet.stream
    return out
