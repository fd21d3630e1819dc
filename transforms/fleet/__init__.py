"""Fleet video: discovering sessions, sparse decoding, alignment, telemetry and quality."""

from transforms.fleet.discover import SessionSpec, discover_sessions
from transforms.fleet.ingest_sessions import IngestSessions, window_table
from transforms.fleet.session import FleetOptions, WindowPiece, clip_id, ingest_session
from transforms.fleet.stage_windows import StageWindows
from transforms.fleet.telemetry import Telemetry, load_telemetry
from transforms.fleet.video import CameraFile, VideoError, sniff_format

__all__ = [
    "CameraFile",
    "FleetOptions",
    "IngestSessions",
    "SessionSpec",
    "StageWindows",
    "Telemetry",
    "VideoError",
    "WindowPiece",
    "clip_id",
    "discover_sessions",
    "ingest_session",
    "load_telemetry",
    "sniff_format",
    "window_table",
]
