"""The retained-heap policy: large freed blocks are reused instead of being page-faulted in again.

Asserted through the kernel's count of minor page faults (``getrusage``), not through time.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys

import pytest
import torch

from sr_bench import cpu_heap
from sr_bench.errors import UsageError
from sr_bench.execution import ExecMode, parse_exec, prepare

PAGES_46_MIB = 32 * 600 * 600 * 4 // resource.getpagesize()  # one 32-channel 600x600 fp32 activation


# One 32-channel 600x600 fp32 activation is 46 MiB: above glibc's largest mmap threshold, so under the system
# policy every forward maps it afresh. Measured in a fresh interpreter: heap state left by other tests would hide it.
_FAULTS_SCRIPT = """
import resource, sys, torch
from sr_bench import cpu_heap
cpu_heap.use(sys.argv[1] == "retain")
net = torch.nn.Sequential(torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(32, 3, 3, padding=1))
x = torch.rand(1, 3, 600, 600)
faults = []
with torch.inference_mode():
    net(x)  # the first forward maps the heap under either policy
    for _ in range(FORWARDS):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        net(x)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(*faults)
"""
FORWARDS = 8


def _faults_per_forward(policy: str) -> list[int]:
    """Minor page faults of each of ``FORWARDS`` warm forwards in a fresh process under ``policy``."""
    script = _FAULTS_SCRIPT.replace("FORWARDS", str(FORWARDS))
    done = subprocess.run([sys.executable, "-c", script, policy], capture_output=True, text=True, check=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    return [int(n) for n in done.stdout.split()]


@pytest.fixture
def restore_policy():
    yield
    cpu_heap.use(False)


def test_glibc_is_here():
    assert cpu_heap.available()  # Linux CI: the policy must be exercised, not skipped


def test_retained_heap_reuses_freed_memory():
    system, retained = _faults_per_forward("system"), _faults_per_forward("retain")
    assert len(system) == len(retained) == FORWARDS
    assert min(system) > PAGES_46_MIB  # every forward faults its large activations in again, page by page
    # Reused: a typical forward faults in almost nothing. Not every one: while glibc's free lists settle, a forward
    # now and then still extends the heap by a block or two (seen: 11,251 or 22,500 faults in one of eight).
    assert statistics.median(retained) < PAGES_46_MIB // 10
    assert sum(retained) < sum(system) // 4


def test_use_is_idempotent(restore_policy):
    cpu_heap.use(True)
    cpu_heap.use(True)
    assert cpu_heap.retained()
    cpu_heap.use(False)
    cpu_heap.use(False)
    assert not cpu_heap.retained()


def test_exec_part_and_label():
    request = parse_exec("channels_last+retain_heap")
    mode = request.mode(torch.device("cpu"))
    assert mode.retain_heap and mode.label == "channels_last+retain_heap"
    assert parse_exec("auto").retain_heap is False  # auto decides per device


def test_prepared_model_switches_the_policy(restore_policy):
    model = torch.nn.Conv2d(3, 3, 3, padding=1).eval()
    x = torch.rand(1, 3, 8, 8)
    prepare(model, ExecMode(retain_heap=True), torch.device("cpu"))(x)
    assert cpu_heap.retained()
    prepare(model, ExecMode(), torch.device("cpu"))(x)  # e.g. a named protocol after an auto run
    assert not cpu_heap.retained()


def test_retain_heap_is_for_cpu_only():
    with pytest.raises(UsageError, match="retain_heap tunes the CPU heap"):
        prepare(torch.nn.Identity(), ExecMode(retain_heap=True), torch.device("cuda"))
