"""Beam PTransforms and the plain functions they wrap.

Names are re-exported lazily (PEP 562): importing ``transforms.samples`` for the CLI must not pay
for importing Apache Beam.
"""

from importlib import import_module

_EXPORTS = {
    "RollingParquetWriter": "transforms.parquet_writer",
    "WrittenFile": "transforms.parquet_writer",
    "partition_dir": "transforms.partitioning",
    "split_partitions": "transforms.partitioning",
    "writer_bucket": "transforms.partitioning",
    "ReadShards": "transforms.read_shards",
    "read_row_group": "transforms.read_shards",
    "row_groups": "transforms.read_shards",
    "NothingLostError": "transforms.run_report",
    "RunReport": "transforms.run_report",
    "SumTallies": "transforms.run_report",
    "tally": "transforms.run_report",
    "WriteShards": "transforms.write_shards",
    "RewriteWithout": "transforms.rewrite_files",
    "RewrittenFile": "transforms.rewrite_files",
    "list_sources": "transforms.sources",
    "ProgressTarget": "transforms.progress",
    "Reporter": "transforms.progress",
    "failed_report_path": "transforms.write_shards",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'transforms' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
