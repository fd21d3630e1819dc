"""``shardsmith demo``: generate both samples, run the pipelines on them, show what happened.

The samples are generated, the posts ingested into ``DIR/datasets/posts``, the fleet into
``DIR/datasets/clips``, and both tokenized, shuffled and packed into ``DIR/datasets/tokens``.
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

__all__ = ["ingest_demo_fleet", "ingest_demo_posts", "run_demo", "tokenize_demo"]


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
        PostsSampleConfig(posts=800, seed=seed),
        progress=progress,
    )
    return {"fleet": fleet, "posts": posts}


def ingest_demo_posts(directory: str, options):
    """Ingest ``DIR/samples/posts`` into ``DIR/datasets/posts``; returns the run report."""
    from pipelines.ingest_posts import IngestPostsConfig, run

    config = IngestPostsConfig(
        sources=(os.path.join(directory, "samples", "posts"),),
        dataset=os.path.join(directory, "datasets", "posts"),
    )
    return run(config, options)


def ingest_demo_fleet(directory: str, options):
    """Ingest ``DIR/samples/fleet`` into ``DIR/datasets/clips`` (2 s windows at 2 fps)."""
    from pipelines.ingest_fleet import IngestFleetConfig, run

    config = IngestFleetConfig(
        source=os.path.join(directory, "samples", "fleet"),
        dataset=os.path.join(directory, "datasets", "clips"),
        window_s=2.0,
        # The sample is broken on purpose (5 bad inputs against 40 windows): show the
        # rejects rather than fail on them.
        max_reject_rate=0.25,
    )
    return run(config, options)


def tokenize_demo(directory: str, options):
    """Tokenize ``DIR/datasets/{posts,clips}`` into ``DIR/datasets/tokens`` (default tokenizer,
    2048-token examples, 2 shards); returns the run report."""
    from pipelines.tokenize import TokenizeConfig, run

    datasets = os.path.join(directory, "datasets")
    config = TokenizeConfig(
        inputs=(os.path.join(datasets, "posts"), os.path.join(datasets, "clips")),
        dataset=os.path.join(datasets, "tokens"),
        shards=2,
    )
    return run(config, options)
