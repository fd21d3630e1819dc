"""Post streams: reading, parsing, cleaning and resolving posts (X API v2, twarc2, plain, deletes)."""

from transforms.posts.compliance import Event
from transforms.posts.parse import ParseOptions, RecordError, map_tweet, parse_line
from transforms.posts.parse_posts import USER_IDS, ParsedChunk, ParsePosts, parse_source
from transforms.posts.resolve import Resolution, dedup_text, resolution_keys, resolve_bucket
from transforms.posts.resolve_posts import ResolvePosts
from transforms.posts.stage_posts import StagedChunk, StagePosts, stage_chunk
from transforms.posts.text import clean_text, dedup_hash, extract_entities, scrub_pii

__all__ = [
    "USER_IDS",
    "Event",
    "ParseOptions",
    "ParsePosts",
    "ParsedChunk",
    "RecordError",
    "Resolution",
    "ResolvePosts",
    "StagePosts",
    "StagedChunk",
    "clean_text",
    "dedup_hash",
    "dedup_text",
    "extract_entities",
    "map_tweet",
    "parse_line",
    "parse_source",
    "resolution_keys",
    "resolve_bucket",
    "scrub_pii",
    "stage_chunk",
]
