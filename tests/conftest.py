"""Fixtures shared by the test modules: two Snakemake runs in the background, once per session.

- ``smoke``: the smoke study (configs/smoke.yaml, end to end), a real run of about two minutes;
- ``sharded``: the smoke study's core (tests/project.py) from scratch with ``shards.count = 3``.

Their DAGs are narrow: on 2 cores each keeps about one of them busy. So when a collected test
needs one, it starts in the background at the session's first test, at a lower priority
(nice 10), the tests that need them run last (in their collected order) and the others run
beside them; the fixture waits for its run and, if it failed, fails with the end of its log.
The two runs share the 2 cores with each other and with the suite: the sharded run is made on a
machine that is oversubscribed, which is what its test wants (tests/test_workflow.py).
The tests' own torch work runs on one thread: on two cores shared with a study, a second
thread of torch's waits at every barrier for a core the study holds (a one-second test took
23 s that way).
"""

import os
import signal
import subprocess

import pytest
import torch

from project import BIN, ENV, SMOKE_CORE_FILES, SMOKE_CORE_FOLDERS, copy_project

#: fixture name -> (extra files of the project copy, Snakemake's arguments; targets first:
#: --configfile takes what follows)
BACKGROUND = {
    "smoke": ({}, ["--configfile", "configs/smoke.yaml"]),
    "sharded": ({"shards3.yaml": "shards: {count: 3}\n"},
                [*SMOKE_CORE_FILES, *SMOKE_CORE_FOLDERS, "--configfile", "configs/smoke.yaml", "shards3.yaml"]),
}


def _needs(item, name: str) -> bool:
    return name in getattr(item, "fixturenames", ())


def _needs_background(item) -> bool:
    return any(_needs(item, name) for name in BACKGROUND)


def pytest_collection_modifyitems(session, config, items):
    """The tests that need a background run last, so that the others run while it is built."""
    items[:] = [i for i in items if not _needs_background(i)] + [i for i in items if _needs_background(i)]


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """The tests' own torch work on one thread, whether or not a study runs beside them."""
    torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def _background_runs(request, tmp_path_factory):
    """name -> ``(project, process, log)`` of each run of :data:`BACKGROUND` a collected test needs,
    started now."""
    runs = {}
    for name, (files, args) in BACKGROUND.items():
        if not any(_needs(item, name) for item in request.session.items):
            continue
        proj = copy_project(tmp_path_factory.mktemp(name))
        for rel, text in files.items():
            (proj / rel).write_text(text)
        log = tmp_path_factory.mktemp(f"{name}-log") / "snakemake.log"
        with open(log, "w") as out:
            # niced: the tests in this process keep the cores they need (torch's threads slow down
            # many times over when another busy process shares their cores), the studies take the rest
            proc = subprocess.Popen(["nice", "-n", "10", BIN / "snakemake", "--cores", "2", *args],
                                    cwd=proj, env=ENV, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        runs[name] = (proj, proc, log)
    try:
        yield runs
    finally:
        for _, proc, _ in runs.values():
            if proc.poll() is None:  # the session ended early (-x, Ctrl-C): stop the whole run
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _finished(runs: dict, name: str):
    """The project folder of background run ``name`` once it has finished (a copy of a fresh clone)."""
    proj, proc, log = runs[name]
    rc = proc.wait()
    if rc != 0:
        raise AssertionError(f"the {name} run failed ({rc}); end of {log}:\n{log.read_text()[-6000:]}")
    return proj


@pytest.fixture(scope="session")
def smoke(_background_runs):
    """The smoke study's project folder, once its run has finished."""
    return _finished(_background_runs, "smoke")


@pytest.fixture(scope="session")
def sharded(_background_runs):
    """``(project, Snakemake's log)`` of the three-shard run of the smoke study's core, once finished."""
    return _finished(_background_runs, "sharded"), _background_runs["sharded"][2].read_text()
