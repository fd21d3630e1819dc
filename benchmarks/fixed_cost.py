"""Fixed cost of a run: a one-record input end to end, from process start to exit.

Three commands, each a new ``shardsmith`` process timed from start to exit (DESIGN.md §7 target:
<= 2 s each):

* ``ingest posts`` of a one-line JSONL source (a post with ``lang``, as X sends every post: one
  without loads the language-ID model first, ~0.5 s once per worker process);
* ``ingest fleet`` of one generic-layout session: one camera, 2 s of 64x64 H.264 at 10 fps,
  one 2 s window sampled at 1 fps;
* ``tokenize`` of the one-post dataset the first command made.

Anchors, measured in the same run: ``python -c pass`` (interpreter start) and
``python -c "import apache_beam"`` (the floor of any command that runs a Beam pipeline; with
``gc.freeze()`` before exit, as the CLI does, or the interpreter's last collection walks
every object Beam made). The
work itself (one record) takes milliseconds, so a command's wall time is its fixed cost. Best
and median of ``--repeat`` runs; each run writes a new dataset.

    python benchmarks/fixed_cost.py [--repeat 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 2.0
_CLI = [sys.executable, "-m", "runners.cli"]
_IMPORT_BEAM = "import gc, apache_beam; gc.freeze()"


def timed(argv: list[str]) -> float:
    """Wall seconds of one process, start to exit; its output is discarded (it must succeed)."""
    started = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)}: exit {done.returncode}\n{done.stderr}")
    return elapsed


def make_inputs(root: Path) -> dict[str, Path]:
    post = {
        "id": "1",
        "text": "one post, end to end",
        "created_at": "2026-11-01T12:00:00.000Z",
        "author_id": "7",
        "lang": "en",
    }
    posts = root / "one.jsonl"
    posts.write_text(json.dumps(post) + "\n", encoding="utf-8")
    fleet = root / "fleet"
    sample = ["sample", "fleet", str(fleet), "--layout", "generic", "--vehicles", "1"]
    sample += ["--sessions", "1", "--cameras", "1", "--duration", "2", "--size", "64x64"]
    timed(_CLI + sample)
    tokens_input = root / "posts-for-tokenize"
    timed([*_CLI, "ingest", "posts", str(posts), "--to", str(tokens_input)])
    return {"posts": posts, "fleet": fleet, "tokens_input": tokens_input}


def commands(inputs: dict[str, Path], out: Path, i: int) -> dict[str, list[str]]:
    window = ["--window", "2", "--fps", "1", "--size", "64x64"]
    posts, clips, tokens = (str(out / f"{kind}-{i}") for kind in ("posts", "clips", "tokens"))
    fleet, tokens_input = str(inputs["fleet"]), str(inputs["tokens_input"])
    return {
        "ingest posts (1 line)": ["ingest", "posts", str(inputs["posts"]), "--to", posts],
        "ingest fleet (1 session, 2 s)": ["ingest", "fleet", fleet, "--to", clips, *window],
        "tokenize (1 post)": ["tokenize", tokens_input, "--to", tokens, "--seq-len", "64"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each command (default: 3)")
    parser.add_argument("--keep", metavar="DIR", help="work here and keep it (default: a tmp dir)")
    args = parser.parse_args()
    root = Path(args.keep or tempfile.mkdtemp(prefix="shardsmith-fixed-cost-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        anchors = {
            "anchor: python -c pass": [timed([sys.executable, "-c", "pass"]) for _ in range(3)],
            "anchor: import apache_beam": [
                timed([sys.executable, "-c", _IMPORT_BEAM]) for _ in range(args.repeat)
            ],
        }
        inputs = make_inputs(root)
        runs: dict[str, list[float]] = {}
        for i in range(args.repeat):  # interleaved: a burst of load hits every command alike
            for name, argv in commands(inputs, root / "out", i).items():
                runs.setdefault(name, []).append(timed(_CLI + argv))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    beam = min(anchors["anchor: import apache_beam"])
    print(f"fixed cost, wall seconds from process start to exit ({args.repeat} runs each)")
    print(f"{'command':34} {'best':>6} {'median':>7} {'target':>7} {'best-beam':>10}  verdict")
    for name, times in anchors.items():
        print(f"{name:34} {min(times):6.2f} {statistics.median(times):7.2f}")
    failed = 0
    for name, times in runs.items():
        best = min(times)
        ok = best <= TARGET_S
        failed += not ok
        print(
            f"{name:34} {best:6.2f} {statistics.median(times):7.2f} {TARGET_S:7.1f} "
            f"{best - beam:10.2f}  {'ok' if ok else 'OVER'}"
        )
    print("best-beam: what a command costs beyond importing Beam (its floor)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
