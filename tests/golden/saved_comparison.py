"""A comparison as the store holds it, saved by the code before the redesign of issue 15.

``saved_comparison.json`` was written (``python -m tests.golden.saved_comparison --write``) by
the comparison code as it was before the comparison types became pydantic models. It covers
what the serialised form has to carry: undefined values (NaN, stored as null), flips and worst
items with unicode and markup in responses, confounders, a probe that could not be loaded (outcome
rows only, a warning), training-data overlap with clean-only rows, and the audit's policy and gate
verdict. ``tests/test_compare.py`` checks that it loads and serialises again byte for byte (so
existing stores, comparison ids and the stores' ``result_sha256`` seals still verify), and that
the current code computes the same comparison from the same inputs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any

SAVED = Path(__file__).with_name("saved_comparison.json")
N_BOOT = 50


def _ratio_records(n: int, *, shift: float) -> list[dict[str, Any]]:
    """A ratio metric that is undefined (0/0) in the "empty" subgroup, and a NaN outcome."""
    out = []
    for i in range(n):
        group = "empty" if i % 4 == 0 else ("left" if i % 2 else "right")
        num = 0.0 if group == "empty" else (i % 3) / 3 + shift
        den = 0.0 if group == "empty" else 1.0
        out.append({"item_id": f"r-{i}", "cluster": f"c-{i // 2}", "prompt": f"ratio item {i} na\u00efve \u2603",
                    "responses": [f"answer {i} <i>{shift}</i>"], "subgroups": {"group": group},
                    "num": num, "den": den, "outcomes": {"score": num, "undefined": math.nan}})
    return out


def compute_comparison() -> Any:
    """The comparison of the saved fixture, computed by the current code from the same inputs."""
    from rai_audit.comparison import compare_runs
    from rai_audit.gate import gate_for_comparison, load_policy, policy_identity
    from rai_audit.probe import DatasetInfo, MetricSpec, Probe
    from tests.test_compare import FAKE_PROBES, SCORER, FakeStore, bias_records, tox_records

    class FakeRatio(Probe):
        name = "fakeratio"
        title = "Fake ratio \u2014 undefined in one subgroup"
        citation = "(toy)"
        metric_specs = (MetricSpec("ratio", "sum(num) / sum(den).", "higher", "ratio"),)

        def load(self):
            return DatasetInfo(name="fakeratio", source="memory"), []

        def requests(self, item):
            return []

        def record(self, item, responses, scores, scorer):
            return {}

        def aggregate(self, records):
            groups: dict[str, list] = {"": list(records)}
            for r in records:
                groups.setdefault(r["subgroups"]["group"], []).append(r)
            out = {}
            for g, rs in groups.items():
                den = sum(r["den"] for r in rs)
                out[("ratio", g)] = (sum(r["num"] for r in rs) / den if den else math.nan, len(rs))
            return out

    probes = {**FAKE_PROBES, "fakeratio": FakeRatio}

    def loader(name, params):
        if name not in probes:
            raise ImportError(f"no probe {name!r}")
        return probes[name](params)

    qa = lambda xs: [{"item_id": f"q{i}", "outcomes": {"correct": float(x)}, "subgroups": {}} for i, x in enumerate(xs)]  # noqa: E731
    tox_a = [0.1, 0.2, 0.6, 0.1, 0.3, 0.05, 0.2, 0.1]
    tox_b = [0.7, 0.2, 0.4, 0.9, 0.3, 0.05, 0.8, 0.1]
    store = FakeStore()
    store.add_run("A", {"fakebias": bias_records(seed=1), "faketox": tox_records(tox_a),
                        "fakeratio": _ratio_records(24, shift=0.0), "qa": qa([1, 1, 0, 0, 1, 0] * 3)}, scorer=SCORER)
    store.add_run("B", {"fakebias": bias_records(planted=True, script=True),
                        "faketox": tox_records(tox_b, [f"continuation {i} \u00e9\u00e8 \U0001f600" for i in range(8)]),
                        "fakeratio": _ratio_records(24, shift=0.25), "qa": qa([0, 1, 1, 0, 1, 1] * 3)}, scorer=SCORER)
    overlap = {"fingerprint": {"fingerprint_id": "fp-1", "n": 13},
               "probes": {"faketox": {"fingerprint_id": "fp-1", "checked": 8, "overlapping": ["rtp-0", "rtp-3"],
                                      "unchecked": [], "examples": [], "fraction": 0.25}}}
    b = store.runs["B"]
    store.runs["B"] = dataclasses.replace(b, provenance={**b.provenance, "contamination": overlap})
    ident = policy_identity("default", load_policy("default"))
    comp = compare_runs(store, "A", "B", n_boot=N_BOOT, seed=3, probe_loader=loader, policy=ident)
    comp.gate = gate_for_comparison(comp).to_dict()
    return comp


if __name__ == "__main__":
    from rai_audit.store.integrity import comparison_digest
    from rai_audit.store.types import json_dumps

    if "--write" not in sys.argv:
        sys.exit("usage: python -m tests.golden.saved_comparison --write  (the fixture is checked by tests/test_compare.py)")
    comp = compute_comparison()
    result = json.loads(json_dumps(comp.model_dump(mode="json")))  # what Store.add_comparison writes
    SAVED.write_text(json.dumps({"result": result, "result_sha256": comparison_digest(result)}, indent=1,
                                ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {SAVED}")
