"""Loading a Hugging Face tokenizer once, and encoding document texts fast on the workers.

The tokenizer is loaded with ``transformers`` (``AutoTokenizer`` for a hub name or a directory,
``PreTrainedTokenizerFast`` for a bare ``tokenizer.json``) on the machine that builds the
pipeline. Workers get its serialized ``tokenizer.json`` (with the special tokens shardsmith
adds), so they never need the hub, the path, or ``transformers``; they encode through the Rust
tokenizer's ``encode_batch_fast``, which is what ``AutoTokenizer`` runs underneath.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

import numpy as np
import pyarrow as pa

from schemas.errors import UserError
from transforms.tokenize.default_tokenizer import DEFAULT_DIR, DEFAULT_NAME, SPECIAL_TOKENS
from transforms.tokenize.plain_tokenizer import read_plain_tokenizer

__all__ = ["TokenizerSpec", "collapse_patches", "encode_texts", "load_tokenizer"]


@dataclass(frozen=True)
class TokenizerSpec:
    """A tokenizer as the pipeline uses it: picklable, self-contained.

    Attributes:
        name: what the user asked for (hub name, path, or ``shardsmith-default``).
        sha256: SHA-256 of the tokenizer's own ``tokenizer.json`` (as serialized by
            ``tokenizers``, before shardsmith adds tokens): two runs used the same tokenizer
            exactly when these are equal.
        vocab_size: ids in use, added special tokens included.
        special_ids: ``eos``, ``pad``, ``video_start``, ``video_end``, ``patch`` -> token id.
        json: the serialized tokenizer the workers load (special tokens included).
    """

    name: str
    sha256: str
    vocab_size: int
    special_ids: dict[str, int]
    json: str = field(repr=False)

    def manifest_entry(self) -> dict:
        """What the ``tokens`` manifest records about the tokenizer."""
        return {
            "name": self.name,
            "sha256": self.sha256,
            "vocab_size": self.vocab_size,
            "special_tokens": dict(self.special_ids),
        }

    def backend(self):
        """A fresh Rust ``tokenizers.Tokenizer`` for encoding.

        Special-token strings inside document text are encoded as plain text, so a post that
        contains ``<|endoftext|>`` cannot end its document early or fake a frame.
        """
        from tokenizers import Tokenizer

        tok = Tokenizer.from_str(self.json)
        tok.encode_special_tokens = True
        return tok


def _from_transformers(name: str):
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # no "PyTorch was not found" noise
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    path = Path(name).expanduser()
    if not path.exists() and (name.startswith((".", "~")) or os.path.isabs(name)):
        raise UserError(f"--tokenizer {name}: no such file or directory")
    try:
        if path.is_file():
            return PreTrainedTokenizerFast(tokenizer_file=str(path))
        if path.is_dir():
            return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        return AutoTokenizer.from_pretrained(name)
    except Exception as e:  # transformers raises many types (OSError, ValueError, HF errors)
        where = "directory" if path.is_dir() else "file" if path.exists() else "hub name"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(
            f"--tokenizer {name}: could not load a tokenizer from this {where} ({first}); "
            f"expected a Hugging Face hub name, a directory with tokenizer.json, or a "
            f"tokenizer.json file"
        ) from None


def load_tokenizer(name: str | None = None) -> TokenizerSpec:
    """Load the tokenizer ``name`` (default: the one shipped in the package).

    End-of-document and padding are the tokenizer's own ``eos_token`` / ``pad_token`` when it
    has them; missing ones and the media tokens (``<|video_start|>``, ``<|video_end|>``,
    ``<|patch|>``) are added as special tokens after its vocabulary.
    """
    from tokenizers import AddedToken, Tokenizer

    wanted = dict(SPECIAL_TOKENS)
    if name in (None, DEFAULT_NAME):
        # Ours: it has every special token already, and loading it needs no transformers import
        # (seconds, with torch installed). A test checks AutoTokenizer gives the same ids.
        original = Tokenizer.from_file(str(DEFAULT_DIR / "tokenizer.json")).to_str()
    elif (plain := read_plain_tokenizer(name)) is not None:
        original, own = plain
        wanted.update(own)
    else:
        hf = _from_transformers(name)
        backend = getattr(hf, "backend_tokenizer", None)
        if backend is None:
            raise UserError(
                f"--tokenizer {name}: a slow (Python) tokenizer; expected one with a "
                f"tokenizer.json (a 'fast' tokenizer)"
            )
        original = backend.to_str()
        for role in ("eos", "pad"):
            own = getattr(hf, f"{role}_token", None)
            if isinstance(own, str) and own:
                wanted[role] = own
    tok = Tokenizer.from_str(original)
    missing = [t for t in wanted.values() if tok.token_to_id(t) is None]
    if missing:
        tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in missing])
    ids = {role: tok.token_to_id(t) for role, t in wanted.items()}
    return TokenizerSpec(
        name=name or DEFAULT_NAME,
        sha256=hashlib.sha256(original.encode("utf-8")).hexdigest(),
        vocab_size=tok.get_vocab_size(with_added_tokens=True),
        special_ids=ids,
        json=tok.to_str(),
    )


def encode_texts(tokenizer, texts: list[str], eos_id: int) -> pa.ListArray:
    """Token ids of each text followed by ``eos_id``, as one Arrow ``list<int32>`` array.

    ``tokenizer`` is ``TokenizerSpec.backend()``. No special tokens are added besides EOS (no
    BOS/CLS: documents are packed back to back). A text that occurs more than once is encoded
    once: a tokenizer gives a text the same ids wherever it is, and posts repeat (reposts,
    quotes, bots) -- 41% of the texts of the benchmark's firehose sample do.
    """
    first: dict[str, int] = {}
    which = [first.setdefault(t, len(first)) for t in texts]
    if len(first) == len(texts):
        return _encode(tokenizer, texts, eos_id)
    return _encode(tokenizer, list(first), eos_id).take(pa.array(which, pa.int32()))


def _encode(tokenizer, texts: list[str], eos_id: int) -> pa.ListArray:
    encodings = tokenizer.encode_batch_fast(texts, add_special_tokens=False)
    n = len(encodings)
    # Every id goes once into one int32 buffer (EOS in place), and Arrow's list array is made
    # from that buffer and the documents' offsets: no Python list per document, no list of
    # lists for Arrow to walk (~3x faster than pa.array([e.ids + [eos] ...])).
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(np.fromiter(map(len, encodings), np.int64, n) + 1, out=offsets[1:])
    ends = offsets[1:] - 1
    flat = np.full(int(offsets[-1]), eos_id, np.int32)
    body = np.ones(len(flat), bool)
    body[ends] = False
    flat[body] = np.fromiter(chain.from_iterable(e.ids for e in encodings), np.int32, len(flat) - n)
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(flat, pa.int32()))


_PATCH_RUN = re.compile(r"(?:<\|patch\|>){2,}")


def collapse_patches(text: str) -> str:
    """Decoded text made readable: a run of patch placeholders becomes ``<|patch|>×N``."""
    return _PATCH_RUN.sub(lambda m: f"<|patch|>×{len(m.group(0)) // 9}", text)
