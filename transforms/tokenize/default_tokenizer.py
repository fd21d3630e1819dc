"""The small byte-level BPE tokenizer that ships inside the package, and the script that made it.

It exists so that ``shardsmith tokenize`` and the demo work offline; it is trained on texts from
the post sample generator (ten languages, hashtags, emoji, URLs), so it is demo-grade: train
real models with a real tokenizer (``--tokenizer NAME|PATH``). Regenerate it, byte for byte,
with::

    python -m transforms.tokenize.default_tokenizer
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

__all__ = ["DEFAULT_DIR", "DEFAULT_NAME", "SPECIAL_TOKENS", "train_default_tokenizer"]

DEFAULT_NAME = "shardsmith-default"
DEFAULT_DIR = Path(__file__).with_name("default")
# End of document, padding, and the frame markers of multimodal documents (one placeholder per
# patch): in this order they get ids 0..4 in the default tokenizer.
SPECIAL_TOKENS = {
    "eos": "<|endoftext|>",
    "pad": "<|pad|>",
    "video_start": "<|video_start|>",
    "video_end": "<|video_end|>",
    "patch": "<|patch|>",
}
_VOCAB_SIZE = 4096
_TEXTS = 20_000
_SEED = 20261122


def _corpus() -> list[str]:
    from transforms.samples.x_text import LANG_TEMPLATES, compose_text

    rng = random.Random(_SEED)
    langs = sorted(LANG_TEMPLATES)
    texts = [
        compose_text(rng, rng.choice(langs), pii=rng.random() < 0.1).text for _ in range(_TEXTS)
    ]
    # Digits, punctuation and ASCII words beyond the templates, so numbers do not fall to bytes.
    texts += [
        " ".join(str(rng.randrange(10 ** rng.randrange(1, 7))) for _ in range(8))
        for _ in range(500)
    ]
    return texts


def train_default_tokenizer(out_dir: Path = DEFAULT_DIR) -> Path:
    """Train the default tokenizer into ``out_dir`` (``tokenizer.json`` +
    ``tokenizer_config.json``, loadable with ``AutoTokenizer.from_pretrained(out_dir)``)."""
    import json

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=_VOCAB_SIZE,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    # What transformers installs when it loads a tokenizer without BOS/EOS templates: with it
    # in the file, the file and AutoTokenizer's view of it serialize (and hash) the same.
    tok.post_processor = processors.TemplateProcessing(single="$A", pair="$A $B:1")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "tokenizer.json").write_text(tok.to_str(pretty=True) + "\n", encoding="utf-8")
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "eos_token": SPECIAL_TOKENS["eos"],
        "pad_token": SPECIAL_TOKENS["pad"],
        "model_max_length": 1 << 20,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=1) + "\n")
    return out_dir


if __name__ == "__main__":
    print(train_default_tokenizer(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DIR))
