"""Behaviour unchanged: the golden audit (every probe, two tiny models, fixed seeds) reproduces the
metrics, CIs, p-values and flip counts recorded in tests/golden/golden_metrics.json.

Discrete values (ids, counts, flips, verdicts) must be equal; floats agree to ``MODEL_REL`` (1e-4)
relative: the same code on the same CPU gives identical bits, and the tolerance absorbs the fp32
kernels of another CPU family, which sum in another order (measured: up to 1.7e-5 relative).
"""

from __future__ import annotations

import json

from tests.golden.golden_run import GOLDEN, MODEL_REL, compute, differences


def test_golden_audit_is_reproduced(tmp_path, shared_data):
    diffs = differences(json.loads(GOLDEN.read_text()), json.loads(json.dumps(compute(tmp_path))), rel=MODEL_REL)
    assert not diffs, "\n".join(diffs[:40])
