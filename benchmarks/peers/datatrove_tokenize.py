"""datatrove's ParquetReader -> DocumentTokenizer over a posts dataset: the peer of ``tokenize``.

Runs in datatrove's own virtualenv (``make peers``, plus ``tokenizers``), never the project's;
prints the wall seconds on its last line. It reads the ``text`` of every post, encodes it with
the same ``tokenizer.json``, appends EOS, shuffles the documents of each task and writes
datatrove's flat token files (no packing to a sequence length, no provenance, no Parquet).

    .peers/datatrove/bin/python benchmarks/peers/datatrove_tokenize.py POSTS_DATA TOKENIZER_JSON \
        OUT_DIR [--workers 2] [--tasks 4]
"""

import argparse
import time

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import ParquetReader
from datatrove.pipeline.tokens import DocumentTokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", help="the posts dataset's data/ directory")
    parser.add_argument("tokenizer", help="a tokenizer.json file")
    parser.add_argument("out")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--eos", default="<|endoftext|>")
    args = parser.parse_args()
    start = time.perf_counter()
    LocalPipelineExecutor(
        pipeline=[
            ParquetReader(
                args.data,
                text_key="text",
                id_key="post_id",
                read_metadata=False,  # the posts schema has a "media" column datatrove reserves
                glob_pattern="**/*.parquet",
            ),
            DocumentTokenizer(
                f"{args.out}/tokens",
                tokenizer_name_or_path=args.tokenizer,
                eos_token=args.eos,
                local_working_dir=f"{args.out}/work",
                shuffle_documents=True,
                seed=0,
            ),
        ],
        tasks=args.tasks,
        workers=args.workers,
        logging_dir=f"{args.out}/logs",
    ).run()
    print(f"{time.perf_counter() - start:.3f}")


if __name__ == "__main__":
    main()
