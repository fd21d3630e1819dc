"""Running small Beam pipelines inside tests."""

from __future__ import annotations

from typing import ClassVar

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions


def in_memory_options() -> PipelineOptions:
    """Beam's FnApiRunner in this process: fast, and sees this process's memory:// files."""
    return PipelineOptions(["--runner=DirectRunner", "--direct_running_mode=in_memory"])


def run(build, options: PipelineOptions | None = None) -> None:
    with beam.Pipeline(options=options or in_memory_options()) as p:
        build(p)


class Collect(beam.DoFn):
    """Collects elements into a module-level list (in-memory runner only)."""

    sink: ClassVar[list] = []

    def process(self, element):
        Collect.sink.append(element)
