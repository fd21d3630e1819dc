"""Local tokenizers that ``transformers`` would hand back unchanged, read without it.

Importing ``transformers`` for ``AutoTokenizer`` imports torch when it is installed: ~2.5 s of
CPU on every run, more than tokenizing 100k posts' worth of text takes on one core. For the
plainest local tokenizer -- a ``tokenizer.json`` (alone, or in a directory next to a
``tokenizer_config.json`` naming the generic ``PreTrainedTokenizerFast``) whose special tokens
are all in its vocabulary, with no truncation or padding, and with the post-processor
``transformers`` installs itself -- what ``AutoTokenizer`` gives is the file as ``tokenizers``
reads it, and ``eos_token``/``pad_token`` from the config. Anything else (a hub name, other
files, other config keys, another class) goes through ``transformers``; a test checks the two
paths agree.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["read_plain_tokenizer"]

# Keys of tokenizer_config.json that do not change the backend tokenizer of the generic class.
_CONFIG_KEYS = {
    "tokenizer_class",
    "eos_token",
    "pad_token",
    "bos_token",
    "unk_token",
    "model_max_length",
    "clean_up_tokenization_spaces",
}
# What transformers sets as the post-processor of a tokenizer without BOS/EOS templates.
_POST_PROCESSOR = {
    "type": "TemplateProcessing",
    "single": [{"Sequence": {"id": "A", "type_id": 0}}],
    "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
    "special_tokens": {},
}


def _files(path: Path) -> tuple[Path, dict] | None:
    """The tokenizer.json and the config of ``path``, when it holds nothing else."""
    if path.is_file():
        return path, {}
    if not path.is_dir():
        return None
    names = {p.name for p in path.iterdir() if not p.name.startswith(".")}
    if "tokenizer.json" not in names or not names <= {"tokenizer.json", "tokenizer_config.json"}:
        return None
    config = {}
    if "tokenizer_config.json" in names:
        config = json.loads((path / "tokenizer_config.json").read_text(encoding="utf-8"))
    return path / "tokenizer.json", config


def read_plain_tokenizer(name: str) -> tuple[str, dict[str, str]] | None:
    """``(tokenizer.json as tokenizers serializes it, {"eos": token, "pad": token})`` of the
    local tokenizer ``name`` when ``AutoTokenizer`` would give exactly that; else ``None``."""
    from tokenizers import Tokenizer

    path = Path(name).expanduser()
    try:
        found = _files(path)
        if found is None:
            return None
        file, config = found
        raw = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # transformers reports what is wrong with it
    if not isinstance(config, dict) or not set(config) <= _CONFIG_KEYS:
        return None
    if config.get("tokenizer_class", "PreTrainedTokenizerFast") != "PreTrainedTokenizerFast":
        return None
    if raw.get("truncation") is not None or raw.get("padding") is not None:
        return None
    if raw.get("post_processor") != _POST_PROCESSOR:
        return None
    specials = {k: config.get(k) for k in ("eos_token", "pad_token", "bos_token", "unk_token")}
    if not all(isinstance(v, str) for v in specials.values() if v is not None):
        return None  # AddedToken dicts: transformers decides
    try:
        tok = Tokenizer.from_file(str(file))
    except Exception:  # tokenizers raises a bare Exception on a file it cannot read
        return None
    # transformers adds a special token missing from the vocabulary: that changes the file.
    if any(tok.token_to_id(t) is None for t in specials.values() if t):
        return None
    own = {role: config[f"{role}_token"] for role in ("eos", "pad") if config.get(f"{role}_token")}
    return tok.to_str(), own
