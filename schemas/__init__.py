"""Arrow schemas of every dataset kind, the dataset manifest format, and validation."""

from schemas.errors import UserError
from schemas.evolution import check_evolution, evolve_table
from schemas.kinds import CLIPS, KINDS, POSTS, TOKENS, KindSpec, kind_spec
from schemas.manifest import (
    FORMAT_VERSION,
    OPERATIONS,
    DatasetInfo,
    FileEntry,
    Manifest,
    ManifestError,
    SourceEntry,
    TombstoneEntry,
    check_relative_path,
    manifest_name,
    parse_manifest_name,
)
from schemas.near_dup import MINHASH_SCHEMA, NEAR_DUPLICATES_SCHEMA
from schemas.rejects import MAX_PAYLOAD_BYTES, REJECTS_SCHEMA, reject_table
from schemas.tombstones import TOMBSTONE_TARGETS, TOMBSTONES_SCHEMA
from schemas.validate import SchemaError, conform_table

__all__ = [
    "CLIPS",
    "FORMAT_VERSION",
    "KINDS",
    "MAX_PAYLOAD_BYTES",
    "MINHASH_SCHEMA",
    "NEAR_DUPLICATES_SCHEMA",
    "OPERATIONS",
    "POSTS",
    "REJECTS_SCHEMA",
    "TOKENS",
    "TOMBSTONES_SCHEMA",
    "TOMBSTONE_TARGETS",
    "DatasetInfo",
    "FileEntry",
    "KindSpec",
    "Manifest",
    "ManifestError",
    "SchemaError",
    "SourceEntry",
    "TombstoneEntry",
    "UserError",
    "check_evolution",
    "check_relative_path",
    "conform_table",
    "evolve_table",
    "kind_spec",
    "manifest_name",
    "parse_manifest_name",
    "reject_table",
]
