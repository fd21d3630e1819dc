"""encode_texts: each text's ids and EOS, whether texts repeat or not, as one list<int32> array."""

from __future__ import annotations

import pyarrow as pa
import pytest

from transforms.tokenize import encode_texts, load_tokenizer


@pytest.mark.parametrize(
    "texts",
    [
        ["Traffic on the bridge 🚗", "東京の朝", "x", ""],
        ["again", "Traffic on the bridge 🚗", "again", "", "again", ""],
        [],
    ],
)
def test_each_text_gets_its_own_ids_then_eos(texts):
    tok = load_tokenizer().backend()
    got = encode_texts(tok, texts, eos_id=0)
    assert got.type == pa.list_(pa.int32())
    want = [[*tok.encode(t, add_special_tokens=False).ids, 0] for t in texts]
    assert got.to_pylist() == want
