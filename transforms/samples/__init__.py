"""Synthetic but realistic inputs: fleet recordings (H.264 via PyAV) and X-style post streams."""

from transforms.samples.fleet import FleetSampleConfig, generate_fleet_sample
from transforms.samples.frame_clock import read_clock, stamp_clock
from transforms.samples.posts import PostsSampleConfig, generate_posts_sample

__all__ = [
    "FleetSampleConfig",
    "PostsSampleConfig",
    "generate_fleet_sample",
    "generate_posts_sample",
    "read_clock",
    "stamp_clock",
]
