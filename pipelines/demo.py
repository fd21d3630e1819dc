"""``shardsmith demo``: generate both samples and show what was made.

Each pipeline extends the demo as it lands; for now it generates the fleet and post samples
that the ingestion pipelines consume.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from transforms.samples import (
    FleetSampleConfig,
    PostsSampleConfig,
    generate_fleet_sample,
    generate_posts_sample,
)

__all__ = ["run_demo"]


def run_demo(
    directory: str, *, seed: int = 0, progress: Callable[[str], None] | None = None
) -> dict[str, dict]:
    """Generate ``DIR/samples/fleet`` and ``DIR/samples/posts``; return both truths.

    The samples include broken inputs (truncated and fake videos, malformed lines) on purpose:
    the pipelines must reject them with a reason and lose nothing else.
    """
    fleet = generate_fleet_sample(
        os.path.join(directory, "samples", "fleet"),
        FleetSampleConfig(seed=seed, broken=True),
        progress=progress,
    )
    posts = generate_posts_sample(
        os.path.join(directory, "samples", "posts"),
        PostsSampleConfig(seed=seed),
        progress=progress,
    )
    return {"fleet": fleet, "posts": posts}
