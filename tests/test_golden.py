"""Behaviour unchanged: the golden audit (every probe, two tiny models, fixed seeds) reproduces the
metrics, CIs, p-values and flip counts recorded in tests/golden/golden_metrics.json.

Floats must agree to 1e-9 relative: the same code on the same CPU gives identical bits; the
tolerance only absorbs BLAS kernels that sum in another order on another CPU.
"""

from __future__ import annotations

import json

from tests.golden.golden_run import GOLDEN, compute, differences


def test_golden_audit_is_reproduced(tmp_path, shared_data):
    diffs = differences(json.loads(GOLDEN.read_text()), json.loads(json.dumps(compute(tmp_path))))
    assert not diffs, "\n".join(diffs[:40])
