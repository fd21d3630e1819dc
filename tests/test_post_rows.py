"""A chunk keeps its rows as one list of values, row after row in the posts schema's column order
(``transforms.posts.rows``): that list makes the same table as the rows as dicts, and turns into
those dicts and back without a value moving."""

from __future__ import annotations

import pytest
from test_parse_unchanged import hostile_lines, text_lines

from transforms.posts.parse import Chunk, ParseOptions, parse_line
from transforms.posts.rows import row_dicts, row_values, rows_to_table, values_to_table
from transforms.samples.firehose import firehose_lines

URI = "mem://rows.jsonl"


def parsed(lines: list[bytes], options: ParseOptions) -> Chunk:
    chunk = Chunk(URI)
    for number, line in enumerate(lines, 1):
        parse_line(line, number, chunk, options)
    return chunk


@pytest.mark.parametrize("corpus", ["firehose", "texts", "hostile"])
@pytest.mark.parametrize("options", [ParseOptions(), ParseOptions(scrub_pii=True)])
def test_values_make_the_table_the_rows_make(corpus, options):
    lines = {
        "firehose": lambda: firehose_lines(300, seed=4),
        "texts": text_lines,
        "hostile": hostile_lines,
    }[corpus]()
    chunk = parsed(lines, options)
    rows = chunk.rows
    # Firehose lines take the fast path only; texts and hostile lines both parsers.
    assert len(rows) > 10
    assert values_to_table(chunk.values).equals(rows_to_table(rows))
    assert [v for row in rows for v in row_values(row)] == chunk.values
    assert row_dicts(chunk.values) == rows


def test_no_rows_make_an_empty_table_and_a_partial_row_none():
    assert values_to_table([]).num_rows == 0
    values = parsed(firehose_lines(3, seed=1), ParseOptions()).values
    with pytest.raises(ValueError, match="no whole number of rows"):
        values_to_table(values[:-1])
