"""datatrove's MinHash dedup (its four stages) over post texts: the peer of ``--dedup-near``.

Runs in datatrove's own virtualenv (``make peers``), never the project's. Input: a directory of
``*.jsonl`` files of ``{"id", "text"}``; stages: signatures -> buckets -> clusters -> filter
(datatrove's defaults -- word 5-grams of its simplified text, 14 buckets of 8 hashes --
but sha1 shingle hashes, see below). Writes
``OUT/clusters.tsv`` (id, cluster id or -1, 1 if removed) and prints the wall seconds on its
last line.

    .peers/datatrove/bin/python benchmarks/peers/datatrove_minhash.py SRC_DIR OUT_DIR [--workers 2]
"""

import argparse
import glob
import gzip
import json
import time

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup import MinhashDedupSignature
from datatrove.pipeline.dedup.minhash import (
    MinhashConfig,
    MinhashDedupBuckets,
    MinhashDedupCluster,
    MinhashDedupFilter,
)
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter
from datatrove.utils.hashing import HashConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("src")
    parser.add_argument("out")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    files = len(glob.glob(f"{args.src}/*.jsonl"))
    # sha1 shingle hashes: datatrove 0.10.1's xxhash path passes str to xxhash 4, which wants
    # bytes ("Strings must be encoded before hashing").
    config = MinhashConfig(hash_config=HashConfig(hash_fc="sha1"))
    out = args.out

    def run(pipeline, tasks, name):
        LocalPipelineExecutor(
            pipeline=pipeline,
            tasks=tasks,
            workers=min(args.workers, tasks),
            logging_dir=f"{out}/logs/{name}",
        ).run()

    start = time.perf_counter()
    run(
        [
            JsonlReader(args.src, glob_pattern="*.jsonl"),
            MinhashDedupSignature(output_folder=f"{out}/sigs", config=config),
        ],
        files,
        "sigs",
    )
    run(
        [
            MinhashDedupBuckets(
                input_folder=f"{out}/sigs", output_folder=f"{out}/buckets", config=config
            )
        ],
        config.num_buckets,
        "buckets",
    )
    run(
        [
            MinhashDedupCluster(
                input_folder=f"{out}/buckets",
                output_folder=f"{out}/remove",
                config=config,
                save_cluster_id=True,
            )
        ],
        1,
        "clusters",
    )
    run(
        [
            JsonlReader(args.src, glob_pattern="*.jsonl"),
            MinhashDedupFilter(
                input_folder=f"{out}/remove",
                exclusion_writer=JsonlWriter(f"{out}/removed"),
                load_cluster_ids=True,
            ),
            JsonlWriter(f"{out}/kept"),
        ],
        files,
        "filter",
    )
    seconds = time.perf_counter() - start
    with open(f"{out}/clusters.tsv", "w") as tsv:
        for kind, removed in (("kept", 0), ("removed", 1)):
            for path in sorted(glob.glob(f"{out}/{kind}/*.jsonl.gz")):
                with gzip.open(path, "rt") as f:
                    for line in f:
                        doc = json.loads(line)
                        cluster = doc["metadata"].get("minhash_cluster_id", -1)
                        tsv.write(f"{doc['id']}\t{cluster}\t{removed}\n")
    print(f"{seconds:.3f}")


if __name__ == "__main__":
    main()
