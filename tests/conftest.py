"""Fixtures shared by the test modules: the smoke study, run once per session.

The smoke study (configs/smoke.yaml, end to end) is a real Snakemake run of about two minutes
whose DAG is narrow: on 2 cores it keeps about one of them busy. So when any collected test
needs it, it starts in the background at the session's first test, at a lower priority
(nice 10), the tests that need it run last (in their collected order) and the others run
beside it; `smoke` waits for it and, if it failed, fails with the end of its log.
The tests' own torch work runs on one thread: on two cores shared with the study, a second
thread of torch's waits at every barrier for a core the study holds (a one-second test took
23 s that way).
"""

import os
import signal
import subprocess

import pytest
import torch

from project import BIN, ENV, copy_project


def _needs_smoke(item) -> bool:
    return "smoke" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(session, config, items):
    """The tests that need the smoke study last, so that the others run while it is built."""
    items[:] = [i for i in items if not _needs_smoke(i)] + [i for i in items if _needs_smoke(i)]


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """The tests' own torch work on one thread, whether or not the smoke study runs beside them."""
    torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def _smoke_in_background(request, tmp_path_factory):
    """``(project, process, log)`` of the smoke study started now, or None when no test needs it."""
    if not any(_needs_smoke(item) for item in request.session.items):
        yield None
        return
    proj = copy_project(tmp_path_factory.mktemp("smoke"))
    log = tmp_path_factory.mktemp("smoke-log") / "snakemake.log"
    with open(log, "w") as out:
        # niced: the tests in this process keep the cores they need (torch's threads slow down
        # many times over when another busy process shares their cores), the study takes the rest
        proc = subprocess.Popen(["nice", "-n", "10", BIN / "snakemake", "--cores", "2",
                                 "--configfile", "configs/smoke.yaml"],
                                cwd=proj, env=ENV, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proj, proc, log
    finally:
        if proc.poll() is None:  # the session ended early (-x, Ctrl-C): stop the whole run
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="session")
def smoke(_smoke_in_background):
    """The smoke study's project folder, once its run has finished (in a copy of a fresh clone)."""
    proj, proc, log = _smoke_in_background
    rc = proc.wait()
    if rc != 0:
        raise AssertionError(f"the smoke study failed ({rc}); end of {log}:\n{log.read_text()[-6000:]}")
    return proj
