"""The fault suite's fixtures: a seed printed for every run, and a scratch folder whose mounts are
always undone (the rig unmounts them; this is the backstop when a test dies half-way)."""

from __future__ import annotations

import os
import random
import subprocess

import pytest


@pytest.fixture(scope="module")
def fault_seed() -> int:
    seed = int(os.environ.get("SYBAR_FAULTS_SEED") or random.SystemRandom().randrange(1 << 32))
    print(f"\nfault suite seed: {seed} (SYBAR_FAULTS_SEED={seed} repeats it)")
    return seed


@pytest.fixture(scope="module")
def fault_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    yield root
    with open("/proc/self/mounts") as f:
        mounts = [line.split()[1] for line in f if str(root) in line.split()[1]]
    for mount in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True)
