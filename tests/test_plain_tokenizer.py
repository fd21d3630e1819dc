"""A plain local tokenizer is read without transformers, and gives what AutoTokenizer gives."""

from __future__ import annotations

import json
import shutil

import pytest

import transforms.tokenize.tokenizer as tokenizer_module
from transforms.tokenize import load_tokenizer
from transforms.tokenize.default_tokenizer import DEFAULT_DIR
from transforms.tokenize.plain_tokenizer import read_plain_tokenizer


def _through_transformers(name: str, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(tokenizer_module, "read_plain_tokenizer", lambda _: None)
        return load_tokenizer(name)


def _trained(path, config: dict | None = None):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["</s>", "<pad>"], show_progress=False
    )
    tok.train_from_iterator(["traffic on the bridge", "東京の朝の渋滞", "a b c"] * 20, trainer)
    tok.post_processor = processors.TemplateProcessing(single="$A", pair="$A $B:1")
    path.mkdir()
    tok.save(str(path / "tokenizer.json"))
    if config is not None:
        (path / "tokenizer_config.json").write_text(json.dumps(config))
    return path


@pytest.mark.parametrize(
    "case", ["default", "trained", "trained-file", "trained-no-config", "own-eos-pad"]
)
def test_the_plain_path_gives_what_autotokenizer_gives(case, tmp_path, monkeypatch):
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 4096}
    if case == "default":
        name = str(shutil.copytree(DEFAULT_DIR, tmp_path / "default"))
    elif case == "own-eos-pad":
        config |= {"eos_token": "</s>", "pad_token": "<pad>"}
        name = str(_trained(tmp_path / "t", config))
    elif case == "trained-no-config":
        name = str(_trained(tmp_path / "t"))
    else:
        name = str(_trained(tmp_path / "t", config))
        if case == "trained-file":
            name += "/tokenizer.json"
    assert read_plain_tokenizer(name) is not None
    assert load_tokenizer(name) == _through_transformers(name, monkeypatch)
    if case == "own-eos-pad":
        assert load_tokenizer(name).special_ids["eos"] == 0  # the tokenizer's own </s>


@pytest.mark.parametrize(
    "change", ["other-file", "other-key", "other-class", "eos-not-in-vocab", "no-post-processor"]
)
def test_anything_else_goes_through_transformers(change, tmp_path, monkeypatch):
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "</s>"}
    if change == "other-key":
        config["add_bos_token"] = True
    elif change == "other-class":
        config["tokenizer_class"] = "GPT2TokenizerFast"
    elif change == "eos-not-in-vocab":
        config["eos_token"] = "<|end|>"
    path = _trained(tmp_path / "t", config)
    if change == "other-file":
        (path / "special_tokens_map.json").write_text(json.dumps({"eos_token": "</s>"}))
    elif change == "no-post-processor":
        data = json.loads((path / "tokenizer.json").read_text())
        data["post_processor"] = None
        (path / "tokenizer.json").write_text(json.dumps(data))
    assert read_plain_tokenizer(str(path)) is None
    assert read_plain_tokenizer(str(tmp_path / "missing")) is None
