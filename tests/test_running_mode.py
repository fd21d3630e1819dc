"""--runner local: a small input runs in this process, anything else as the flags say."""

from __future__ import annotations

import os
import subprocess
import sys

import apache_beam as beam
import pytest

from runners.options import SMALL_INPUT_BYTES, beam_options, local_flags, sized_for_input

IN_PROCESS = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
PROCESSES = ["--direct_running_mode=multi_processing"]
PLUGIN = "--beam_plugins=runners.worker_exit"


def _mode(options) -> tuple[str, str, int]:
    everything = options.get_all_options()
    return (
        everything["runner"],
        everything["direct_running_mode"],
        everything["direct_num_workers"],
    )


@pytest.mark.parametrize(
    ("input_bytes", "workers", "expected"),
    [
        (0, None, IN_PROCESS),
        (1, None, IN_PROCESS),
        (SMALL_INPUT_BYTES - 1, None, IN_PROCESS),
        (
            SMALL_INPUT_BYTES,
            None,
            [*PROCESSES, "--direct_num_workers=4", PLUGIN],
        ),
        (None, None, [*PROCESSES, "--direct_num_workers=4", PLUGIN]),
        (1, 3, [*PROCESSES, "--direct_num_workers=3", PLUGIN]),
        (1, 1, [*PROCESSES, "--direct_num_workers=1", PLUGIN]),
    ],
)
def test_local_flags_from_the_input_size(input_bytes, workers, expected):
    assert local_flags(input_bytes, workers=workers, cores=4) == expected


def test_local_flags_threshold_is_a_parameter():
    assert local_flags(10 << 20, threshold=16 << 20) == IN_PROCESS
    assert local_flags(10 << 20, threshold=8 << 20, cores=2)[0].endswith("multi_processing")


def test_default_local_options_are_sized_after_planning():
    options = beam_options("local", None, ["--job_name=x"])
    cores = os.cpu_count()
    assert _mode(options) == ("DirectRunner", "multi_processing", cores)
    small = sized_for_input(options, 1)
    assert _mode(small) == ("DirectRunner", "in_memory", 1)
    assert small.get_all_options()["job_name"] == "x"  # pass-through flags kept
    assert small.get_all_options()["default_sdk_harness_log_level"] == "WARNING"
    assert sized_for_input(options, SMALL_INPUT_BYTES) is options
    assert sized_for_input(options, None) is options  # unknown size: worker processes
    assert _mode(sized_for_input(options, 10, threshold=8)) == (
        "DirectRunner",
        "multi_processing",
        cores,
    )
    assert _mode(sized_for_input(beam_options("local", None, []), 5)) == (
        "DirectRunner",
        "in_memory",
        1,
    )


@pytest.mark.parametrize(
    "explicit",
    [
        {"workers": 2},
        {"passthrough": ["--direct_num_workers=2"]},
        {"passthrough": ["--direct_running_mode=multi_threading"]},
        {"passthrough": ["--direct-running-mode=multi_processing"]},
    ],
)
def test_workers_or_an_explicit_beam_flag_win(explicit):
    options = beam_options("local", explicit.get("workers"), explicit.get("passthrough", []))
    assert sized_for_input(options, 1) is options
    assert _mode(options)[1] != "in_memory"


def test_other_runners_are_not_sized():
    options = beam_options("flink", None, ["--flink_master=127.0.0.1:8081"])
    assert sized_for_input(options, 1) is options
    assert sized_for_input(beam_options("flink", None, []), 1).get_all_options()["runner"] == (
        "FlinkRunner"
    )


def test_options_built_elsewhere_are_left_alone():
    from apache_beam.options.pipeline_options import PipelineOptions

    options = PipelineOptions(["--runner=DirectRunner"])
    assert sized_for_input(options, 1) is options


def test_worker_processes_load_the_exit_plugin(tmp_path):
    out = str(tmp_path)

    def note_what_the_worker_loaded(_):
        # Nested, so that it is pickled by value: a worker cannot import this test module.
        import os
        import sys

        with open(os.path.join(out, str(os.getpid())), "w") as f:
            f.write(str("runners.worker_exit" in sys.modules))

    with beam.Pipeline(options=beam_options("local", 1, [])) as p:
        _ = p | beam.Create([0]) | beam.Map(note_what_the_worker_loaded)
    (worker,) = tmp_path.iterdir()
    assert int(worker.name) != os.getpid() and worker.read_text() == "True"


def test_the_exit_plugin_freezes_the_heap_at_exit():
    # atexit runs its handlers last in, first out: the check registered before the import
    # runs after the plugin's handler.
    code = (
        "import atexit, gc; "
        "atexit.register(lambda: print(gc.get_freeze_count() > 0)); "
        "import runners.worker_exit"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "True", done.stderr
