"""One module per pipeline: ``build(pipeline, config)`` wires transforms; ``run(argv)`` runs it.

Names are re-exported lazily (PEP 562): a pipeline's heavy imports load only when it is used.
"""

from importlib import import_module

_EXPORTS = {
    "ingest_demo_fleet": "pipelines.demo",
    "ingest_demo_posts": "pipelines.demo",
    "IngestFleetConfig": "pipelines.ingest_fleet",
    "run_demo": "pipelines.demo",
    "IngestPostsConfig": "pipelines.ingest_posts",
    "TokenizeConfig": "pipelines.tokenize",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'pipelines' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
