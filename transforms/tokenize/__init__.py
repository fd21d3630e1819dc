"""Tokenize, globally shuffle and pack documents into ``tokens`` shards (DESIGN.md §4).

Names are re-exported lazily (PEP 562): loading the tokenizer must not import Apache Beam.
"""

from importlib import import_module

_EXPORTS = {
    "DOCS_SCHEMA": "transforms.tokenize.documents",
    "DocumentOptions": "transforms.tokenize.tokenize_documents",
    "InputVersion": "transforms.tokenize.tokenize_documents",
    "Layout": "transforms.tokenize.pack",
    "PACK_MODES": "transforms.tokenize.pack",
    "PackOptions": "transforms.tokenize.pack",
    "PackShards": "transforms.tokenize.pack_shards",
    "PackedShard": "transforms.tokenize.pack_shards",
    "RepackFiles": "transforms.tokenize.repack_files",
    "RepackOptions": "transforms.tokenize.repack",
    "RepackedFile": "transforms.tokenize.repack_files",
    "Rendered": "transforms.tokenize.documents",
    "StageTo": "transforms.tokenize.tokenize_documents",
    "TokenizeDocuments": "transforms.tokenize.tokenize_documents",
    "TokenizedChunk": "transforms.tokenize.tokenize_documents",
    "TokenizerSpec": "transforms.tokenize.tokenizer",
    "collapse_patches": "transforms.tokenize.tokenizer",
    "encode_texts": "transforms.tokenize.tokenizer",
    "example_id": "transforms.tokenize.pack",
    "example_tables": "transforms.tokenize.pack",
    "frame_grid": "transforms.tokenize.patches",
    "layout": "transforms.tokenize.pack",
    "load_tokenizer": "transforms.tokenize.tokenizer",
    "pack_shard": "transforms.tokenize.pack_shards",
    "patchify": "transforms.tokenize.patches",
    "removed_documents": "transforms.tokenize.removed_documents",
    "repack_without": "transforms.tokenize.repack",
    "same_source_pairs": "transforms.tokenize.shuffle",
    "shuffle_keys": "transforms.tokenize.shuffle",
    "sort_documents": "transforms.tokenize.pack_shards",
    "unpatchify": "transforms.tokenize.patches",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'transforms.tokenize' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
