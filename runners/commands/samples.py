"""``shardsmith sample`` and ``shardsmith demo``."""

from __future__ import annotations

import os

from runners.errors import UserError


def sample(args) -> None:
    from runners.console import human_bytes, print_table, progress

    if args.sample_kind == "fleet":
        from transforms.samples import FleetSampleConfig, generate_fleet_sample

        cfg = _config(
            FleetSampleConfig,
            seed=args.seed,
            layout=args.layout,
            vehicles=args.vehicles,
            sessions=args.sessions,
            events=args.events,
            segments=args.segments,
            cameras=args.cameras,
            duration_s=args.duration,
            fps=args.fps,
            width=args.size[0],
            height=args.size[1],
            gop_s=args.gop,
            broken=args.broken,
        )
        with progress("encoding", None) as advance:
            truth = generate_fleet_sample(args.dir, cfg, progress=advance)
        _print_fleet(args.dir, truth, print_table, human_bytes)
    else:
        from transforms.samples import PostsSampleConfig, generate_posts_sample

        cfg = _config(
            PostsSampleConfig,
            seed=args.seed,
            users=args.users,
            posts=args.posts,
            days=args.days,
            malformed=args.malformed,
        )
        truth = generate_posts_sample(args.dir, cfg)
        _print_posts(args.dir, truth, print_table, human_bytes)


def _config(cls, **kwargs):
    try:
        return cls(**kwargs)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _print_fleet(directory, truth, print_table, human_bytes) -> None:
    rows = []
    for s in truth["sessions"]:
        broken = [c["camera"] for c in s["cameras"] if c["broken"]]
        rows.append(
            (
                s["layout"],
                f"{s['vehicle_id'] or s.get('folder')}/{s['session_id']}",
                s["start_utc"],
                f"{s['duration_s']:g}s",
                len({c["camera"] for c in s["cameras"]}),
                sum(c["frames"] for c in s["cameras"]),
                ", ".join(broken) or "-",
            )
        )
    print_table(
        f"fleet sample in {directory}",
        ("layout", "session", "start (UTC)", "length", "cameras", "frames", "broken"),
        rows,
    )
    print(
        f"{truth['files']} files, {truth['frames']:,} frames, {human_bytes(truth['bytes'])}; "
        f"{len(truth['broken'])} broken inputs on purpose"
    )


def _print_posts(directory, truth, print_table, human_bytes) -> None:
    rows = [(name, f["lines"], human_bytes(f["bytes"])) for name, f in truth["files"].items()]
    print_table(f"post sample in {directory}", ("file", "lines", "size"), rows)
    print(
        f"{len(truth['post_ids'])} posts ({len(truth['expected_post_ids'])} expected after "
        f"{len(truth['edited'])} edits and {len(truth['deleted_ids'])} compliance deletes), "
        f"{len(truth['duplicated_ids'])} repeated across files, {len(truth['malformed'])} "
        f"malformed lines, {len(truth['langs'])} languages"
    )


def demo(args) -> None:
    from pipelines.demo import ingest_demo_fleet, ingest_demo_posts, run_demo, tokenize_demo
    from runners.console import human_bytes, print_report, print_table, progress
    from runners.options import beam_options
    from runners.progress import ProgressDisplay, showing

    with progress("generating samples", None) as advance:
        truths = run_demo(args.dir, seed=args.seed, progress=advance)
    _print_fleet(
        os.path.join(args.dir, "samples", "fleet"), truths["fleet"], print_table, human_bytes
    )
    print()
    _print_posts(
        os.path.join(args.dir, "samples", "posts"), truths["posts"], print_table, human_bytes
    )
    print()
    # Each run's own progress (bytes of the planned total, records/s, ETA) while it runs.
    display = ProgressDisplay()
    with showing(display):
        options = beam_options("local", None, [])
        report = ingest_demo_posts(args.dir, options)
    print_report(report)
    expected = len(truths["posts"]["expected_post_ids"])
    print(f"{report.records_written} posts written; the sample's truth expects {expected}")
    print()
    with showing(display):
        report = ingest_demo_fleet(args.dir, options)
    print_report(report)
    print(f"clips in {report.dataset}: one row per 2 s window of every session, all cameras")
    print()
    with showing(display):
        report = tokenize_demo(args.dir, options)
    print_report(report)
    _print_first_batch(report.dataset)
    _print_pictures(args.dir)


def _print_pictures(directory: str) -> None:
    """A contact sheet of the first clips and the document-length histogram of the tokens."""
    from catalog.pictures import contact_sheet
    from catalog.plots import PlotsUnavailable, histogram
    from catalog.sql import connect

    datasets = os.path.join(directory, "datasets")
    con = connect(os.path.join(datasets, "clips"), os.path.join(datasets, "tokens"))
    try:
        clips = con.sql("SELECT * FROM clips ORDER BY start_time, clip_id LIMIT 2").to_arrow_table()
        lengths = con.sql(
            "SELECT sum(s.length) AS n FROM (SELECT unnest(sources) AS s FROM tokens) "
            "GROUP BY s.dataset, s.id"
        ).to_arrow_table()
    finally:
        con.close()
    sheet = os.path.join(directory, "contact-sheet.png")
    contact_sheet(clips.to_pylist(), sheet)
    plot = os.path.join(directory, "document-lengths.png")
    try:
        histogram(
            lengths.column("n").to_numpy(),
            plot,
            title="tokens: document lengths",
            xlabel="document length (tokens)",
        )
    except PlotsUnavailable as exc:
        plot = f"no histogram ({exc})"
    print(f"pictures: {sheet} (2 clips, cameras x time), {plot}")
    print(
        f'try: shardsmith query {datasets}/posts "SELECT lang, count(*) FROM posts GROUP BY lang"'
    )


def _print_first_batch(dataset: str) -> None:
    """What a training loop sees: the first batch of ``TokenReader``, and its first example."""
    from catalog import TokenReader
    from transforms.tokenize.tokenizer import collapse_patches, load_tokenizer

    reader = TokenReader(dataset, batch_size=8, seed=0)
    batch = next(iter(reader))
    ids = batch["input_ids"]
    tokenizer = load_tokenizer(reader.properties["tokenizer"]["name"]).backend()
    text = tokenizer.decode(ids[0][: batch["doc_lens"][0][0]].tolist(), skip_special_tokens=False)
    text = collapse_patches(text)
    print(
        f"TokenReader({dataset!r}, batch_size=8): input_ids {ids.dtype}{list(ids.shape)}, "
        f"{len(reader)} batches per epoch; example 0 begins: {text[:70]!r}"
    )
