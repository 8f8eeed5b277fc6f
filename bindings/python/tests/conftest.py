"""Shared fixtures: every test leaves no child behind."""
import os

import pytest

import mproc


@pytest.fixture(autouse=True)
def no_leftover_children():
    yield
    for p in mproc.active_children():
        p.kill()
        p.join()
    assert mproc.active_children() == []


@pytest.fixture(params=["fork", "forkserver"])
def ctx(request):
    return mproc.get_context(request.param)
