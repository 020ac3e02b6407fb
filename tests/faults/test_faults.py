"""The fault suite: kill -9 each role, fill the storage unit, turn it read-only, at random points of
backups, restores and log dumps; after every fault the invariants of faultkit.Rig hold.

Quick by default (one fault of each kind, as CI runs it); `SYBAR_FAULTS=long` (or `tools/faults --long`)
runs the long campaign of at least 200 randomized faults and prints the counts.
"""

from __future__ import annotations

import os
import random

import faultkit
import pytest

LONG = os.environ.get("SYBAR_FAULTS") == "long"


@pytest.fixture(scope="module")
def rig(fault_root, fault_seed, sa_in_keyring):
    r = faultkit.Rig(fault_root / "quick", random.Random(fault_seed))
    yield r
    r.close()


if not LONG:
    @pytest.mark.parametrize("role,operation", faultkit.QUICK_KINDS,
                             ids=[f"{r}@{o}" for r, o in faultkit.QUICK_KINDS])
    def test_fault(rig, role, operation):
        out = rig.fault(role, operation)
        print(f"{role}@{operation}: {'hit' if out.hit else 'missed'} at {out.at_bytes}/{out.of_bytes} bytes, "
              f"status {out.status}, {out.seconds:.1f} s "
              f"({', '.join(f'{k} {v:.1f}' for k, v in out.timings.items())})")
        assert out.images_lost == 0 and out.half_visible == 0 and out.next_backup_failed == 0, out.problems
        assert not out.problems, out.problems

else:
    def test_long_campaign(fault_root, fault_seed, sa_in_keyring):
        count = int(os.environ.get("SYBAR_FAULTS_COUNT", "200"))
        kinds = faultkit.long_kinds(count, random.Random(fault_seed))
        outcomes = faultkit.campaign(fault_root / "long", kinds, fault_seed)
        print(faultkit.table(outcomes, fault_seed))
        assert len(outcomes) >= count
        assert not [o.problems for o in outcomes if o.problems]
