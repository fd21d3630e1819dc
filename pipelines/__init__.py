"""One module per pipeline: ``build(pipeline, config)`` wires transforms; ``run(argv)`` runs it."""

from pipelines.demo import run_demo

__all__ = ["run_demo"]
