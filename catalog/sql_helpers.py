"""SQL functions registered on ``catalog.connect`` connections.

* ``detokenize(input_ids)``: the text of token ids, with the tokenizer recorded in the tokens
  dataset's manifest (loaded on first use; runs of ``<|patch|>`` placeholders are shown as
  ``<|patch|>×N``);
* ``jpeg_width(frame)`` / ``jpeg_height(frame)``: a JPEG frame's size, from its header.
"""

from __future__ import annotations

import io
from functools import lru_cache

import duckdb
from duckdb.sqltypes import BLOB, INTEGER, VARCHAR

__all__ = ["register_helpers"]


@lru_cache(maxsize=4)
def _tokenizer(name: str, sha256: str):
    from transforms.tokenize.tokenizer import load_tokenizer

    spec = load_tokenizer(name)
    if spec.sha256 != sha256:
        raise ValueError(
            f"the tokenizer {name!r} found here (sha256 {spec.sha256[:12]}) is not the one the "
            f"dataset was tokenized with (sha256 {sha256[:12]})"
        )
    tok = spec.backend()
    return tok


def _detokenizer(name: str, sha256: str):
    def detokenize(ids):
        if ids is None:
            return None
        from transforms.tokenize.tokenizer import collapse_patches

        text = _tokenizer(name, sha256).decode(list(ids), skip_special_tokens=False)
        return collapse_patches(text)

    return detokenize


def _jpeg_size(frame: bytes | None):
    if frame is None:
        return None
    from PIL import Image

    try:
        with Image.open(io.BytesIO(frame)) as im:
            return im.size
    except Exception:  # Pillow raises many types for bad data; a bad frame is NULL, not an error
        return None


def register_helpers(con: duckdb.DuckDBPyConnection, specs) -> None:
    """Register the helper functions on ``con`` for the datasets of ``specs``."""
    tokenizers = {
        (t["name"], t["sha256"])
        for spec in specs
        if spec.ds.kind == "tokens" and spec.version
        for t in [spec.ds.manifest(spec.version).properties.get("tokenizer") or {}]
        if t.get("name") and t.get("sha256")
    }
    if len(tokenizers) == 1:
        ((name, sha256),) = tokenizers
        con.create_function(
            "detokenize", _detokenizer(name, sha256), [duckdb.list_type(INTEGER)], VARCHAR
        )
    con.create_function("jpeg_width", lambda b: (_jpeg_size(b) or (None, None))[0], [BLOB], INTEGER)
    con.create_function(
        "jpeg_height", lambda b: (_jpeg_size(b) or (None, None))[1], [BLOB], INTEGER
    )
