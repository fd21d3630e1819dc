"""Tokenize, globally shuffle and pack documents into ``tokens`` shards (DESIGN.md §4)."""

from transforms.tokenize.documents import DOCS_SCHEMA, Rendered
from transforms.tokenize.pack import PACK_MODES, Layout, PackOptions, example_tables, layout
from transforms.tokenize.pack_shards import PackedShard, PackShards, pack_shard, sort_documents
from transforms.tokenize.patches import frame_grid, patchify, unpatchify
from transforms.tokenize.shuffle import same_source_pairs, shuffle_keys
from transforms.tokenize.tokenize_documents import (
    DocumentOptions,
    InputVersion,
    TokenizedChunk,
    TokenizeDocuments,
)
from transforms.tokenize.tokenizer import TokenizerSpec, encode_texts, load_tokenizer

__all__ = [
    "DOCS_SCHEMA",
    "PACK_MODES",
    "DocumentOptions",
    "InputVersion",
    "Layout",
    "PackOptions",
    "PackShards",
    "PackedShard",
    "Rendered",
    "TokenizeDocuments",
    "TokenizedChunk",
    "TokenizerSpec",
    "encode_texts",
    "example_tables",
    "frame_grid",
    "layout",
    "load_tokenizer",
    "pack_shard",
    "patchify",
    "same_source_pairs",
    "shuffle_keys",
    "sort_documents",
    "unpatchify",
]
