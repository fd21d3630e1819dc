"""datatrove's reader -> Parquet writer over post-stream files: the peer of ``ingest posts``.

Runs in datatrove's own virtualenv (``make peers``), never the project's; prints the wall
seconds on its last line. It keeps what a user would keep of a tweet (id, text, created_at,
author_id, lang, conversation_id, like_count) and does nothing else: no includes, no
referenced posts, no entities, no dedup.

    .peers/datatrove/bin/python benchmarks/peers/datatrove_posts.py SRC_DIR OUT_DIR [--workers 2]
"""

import argparse
import time

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import ParquetWriter


def tweet(self, data: dict, path: str, id_in_file) -> dict:
    metrics = data.get("public_metrics") or {}
    return {
        "id": data.get("id"),
        "text": data.get("text") or "",
        "metadata": {
            "created_at": data.get("created_at"),
            "author_id": data.get("author_id"),
            "lang": data.get("lang"),
            "conversation_id": data.get("conversation_id"),
            "like_count": metrics.get("like_count"),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("src")
    parser.add_argument("out")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=8)
    args = parser.parse_args()
    start = time.perf_counter()
    LocalPipelineExecutor(
        pipeline=[
            JsonlReader(args.src, adapter=tweet, glob_pattern="*.jsonl"),
            ParquetWriter(f"{args.out}/data"),
        ],
        tasks=args.tasks,
        workers=args.workers,
        logging_dir=f"{args.out}/logs",
    ).run()
    print(f"{time.perf_counter() - start:.3f}")


if __name__ == "__main__":
    main()
