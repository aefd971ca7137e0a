"""CivilComments: does the model recognise toxic comments, equally well whoever they mention?

Borkan et al. 2019 (Civil Comments, "Nuanced Metrics for Measuring Unintended Bias with Real Data
for Text Classification"); zero- and k-shot yes/no scoring as in Flan (Chung et al. 2022,
appendix C.3), see :mod:`probes.yes_no`. A comment is toxic when its toxicity label >= 0.5 (the
fraction of raters who called it toxic; 0/1 labels work the same).

Metrics: ROC AUC (the headline, threshold-free) and accuracy overall; where the data has
identity columns (the Jigsaw Unintended Bias release), for each identity (mentioned when its
column >= ``identity_threshold``) the Borkan subgroup AUC, BPSN AUC and BNSP AUC, their
generalised means with p = -5 over identities, and the Jigsaw final bias score
0.25 * AUC + 0.25 * (M_p(subgroup) + M_p(BPSN) + M_p(BNSP)) (formulas in :mod:`probes.yes_no`).

Data, in order of preference: ``file`` (a CSV with ``comment_text`` or ``text``, a label column
and optional identity columns, or a Super-NaturalInstructions task JSON); a CSV in
``<data root>/civil_comments/`` (``test.csv``, ``all_data.csv`` or ``civil_comments.csv``;
``train.csv`` beside it is the exemplar pool); ``<data root>/civil_comments_niv2/`` (the NIv2
task1720 file: Definition / Instances with Yes/No outputs, no identity columns); else the Hugging
Face set ``google/civil_comments`` (no identity columns either). Without a training file, k-shot
exemplars come from the other evaluated items.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from pydantic import Field

from probes import toxicity_common as tc
from probes import yes_no as yn
from probes.yes_no_probe import YesNoClassificationProbe
from probes.files import read_json, read_text
from probes.release_info import HubSource, local_dataset_info
from rai_audit.data_root import benchmark_dir
from rai_audit.errors import DataError, UserError
from rai_audit.probe import DatasetInfo, Item, MetricSpec
from rai_audit.stats.reducers import Declaration, Derived, Mean, Metric, MetricKey, Results, Values
from rai_audit.stats.table import ItemTable

HF_ID = "google/civil_comments"
NIV2_FILE = "task1720_civil_comments_toxicity_classification.json"
LOCAL_CSV_NAMES = ("test.csv", "all_data.csv", "civil_comments.csv")
TEXT_COLUMNS = ("comment_text", "text")
LABEL_COLUMNS = ("label", "toxic", "toxicity", "target", "is_toxic")
#: identity columns of the Jigsaw Unintended Bias in Toxicity Classification release
IDENTITY_COLUMNS = (
    "male", "female", "transgender", "other_gender", "heterosexual", "homosexual_gay_or_lesbian", "bisexual",
    "other_sexual_orientation", "christian", "jewish", "muslim", "hindu", "buddhist", "atheist", "other_religion",
    "black", "white", "asian", "latino", "other_race_or_ethnicity", "physical_disability",
    "intellectual_or_learning_disability", "psychiatric_or_mental_illness", "other_disability",
)
_BOOL = {"yes": 1.0, "no": 0.0, "true": 1.0, "false": 0.0, "toxic": 1.0, "non-toxic": 0.0}


class CivilCommentsParams(yn.YesNoParams):
    n: int | None = Field(None, ge=1, description="Comments sampled uniformly with the seed; None = all.")
    file: str | None = Field(None, description="A CSV (comment_text/text, label, identity columns) or NIv2 task JSON, instead of the data root.")
    train_file: str | None = Field(None, description="Exemplar pool for k-shot (CSV or NIv2 JSON); default: the other evaluated items.")
    text_column: str | None = Field(None, description="CSV text column (default: comment_text, else text).")
    label_column: str | None = Field(None, description="CSV label column (default: label, toxic, toxicity, target or is_toxic).")
    identity_columns: list[str] | None = Field(None, description="CSV identity columns for the Borkan metrics (default: the Jigsaw ones present).")
    label_threshold: float = Field(0.5, description="A comment is toxic when its label >= this.")
    identity_threshold: float = Field(0.5, description="A comment mentions an identity when its column >= this.")
    power: float = Field(-5.0, description="Power of the generalised mean over identities (Jigsaw: -5).")
    hf_id: str = Field(HF_ID, description="Hugging Face data set used when no local files are found.")
    hf_revision: str | None = Field(None, description="Hub revision to load (default: the manifest's pin, else main resolved to its current commit; the run records the commit and a checksum of the rows).")
    hf_split: str = Field("test", description="Hub split evaluated.")
    hf_train_split: str = Field("train", description="Hub split the k-shot exemplars come from.")


def _num(value: Any, path: Any, column: str) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    v = str(value).strip().lower()
    if v in _BOOL:
        return _BOOL[v]
    try:
        return float(v)
    except ValueError:
        raise DataError(f"{path}: column {column!r} has a non-numeric value {value!r}; expected a 0/1 or 0-1 label.") from None


def read_csv_rows(path: Path, params: CivilCommentsParams) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows {id, text, label, identities} of a comments CSV and the identity columns used.

    Rows with a negative label (the Jigsaw convention -1 = not scored) are skipped. Quoted fields
    keep their embedded newlines.
    """
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    header = reader.fieldnames or []
    text_col = params.text_column or next((c for c in TEXT_COLUMNS if c in header), None)
    label_col = params.label_column or next((c for c in LABEL_COLUMNS if c in header), None)
    if text_col not in header or label_col not in header:
        raise DataError(
            f"{path}: needs a text column ({' or '.join(TEXT_COLUMNS)}) and a label column "
            f"({', '.join(LABEL_COLUMNS)}); found {header}. Set text_column / label_column to name them."
        )
    if params.identity_columns is not None:
        missing = [c for c in params.identity_columns if c not in header]
        if missing:
            raise DataError(f"{path}: identity column(s) {missing} not in the header {header}.")
        id_cols = list(params.identity_columns)
    else:
        id_cols = [c for c in IDENTITY_COLUMNS if c in header]
    rows = []
    for i, r in enumerate(reader):
        lab = _num(r.get(label_col), path, label_col)
        if lab is None or lab < 0:
            continue
        mentioned = [c for c in id_cols if (_num(r.get(c), path, c) or 0.0) >= params.identity_threshold]
        rid = (r.get("id") or "").strip() or f"row{i}"
        rows.append({"id": rid, "text": r[text_col], "label": int(lab >= params.label_threshold), "identities": mentioned})
    return rows, id_cols


def read_niv2(path: Path) -> list[dict[str, Any]]:
    doc = read_json(path)
    try:
        instances = doc["Instances"]
    except (KeyError, TypeError):
        raise DataError(f"{path}: not a Super-NaturalInstructions task file (no 'Instances').") from None
    rows = []
    for i, inst in enumerate(instances):
        out = inst.get("output")
        answer = (out[0] if isinstance(out, list) and out else out or "").strip().lower()
        if answer not in ("yes", "no"):
            raise DataError(f"{path}: instance {i} has output {out!r}; expected Yes or No.")
        rows.append({"id": inst.get("id") or f"niv2-{i:04d}", "text": inst["input"], "label": int(answer == "yes"), "identities": []})
    return rows


class CivilComments(YesNoClassificationProbe):
    name = "civil_comments"
    title = "CivilComments: recognising toxic comments (yes/no), with unintended-bias AUCs"
    citation = (
        "Borkan, Dixon, Sorensen, Thain, Vasserman (2019). Nuanced Metrics for Measuring Unintended Bias with "
        "Real Data for Text Classification. WWW '19 Companion. Prompting: Chung et al. (2022), appendix C.3."
    )
    Params = CivilCommentsParams
    needs_scorer = False
    # The one metric on a report's first page: threshold-free ROC AUC, as the Flan-PaLM paper reports for CivilComments.
    headline_metric = "auc"
    content_fields = ("text",)
    metric_specs = (
        MetricSpec("auc", "ROC AUC of the normalised P(yes) against the toxic label", "higher", "auc"),
        MetricSpec("accuracy", "Share of comments classified correctly at the decision threshold", "higher", "proportion"),
        MetricSpec("subgroup_auc", "AUC within comments mentioning the identity (Borkan et al. 2019)", "higher", "auc"),
        MetricSpec("bpsn_auc", "Background-positive, subgroup-negative AUC (Borkan et al. 2019)", "higher", "auc"),
        MetricSpec("bnsp_auc", "Background-negative, subgroup-positive AUC (Borkan et al. 2019)", "higher", "auc"),
        MetricSpec("bias_score", "Jigsaw final score: 0.25 AUC + 0.25 sum of the p=-5 power means", "higher", "auc"),
    )
    params: CivilCommentsParams

    def load(self) -> tuple[DatasetInfo, list[Item]]:
        p = self.params
        pool_rows: list[dict[str, Any]] | None = None
        id_cols: list[str] = []
        if p.file:
            path = Path(p.file).expanduser()
            if not path.is_file():
                raise UserError(f"The CivilComments file {str(path)!r} does not exist; pass a CSV or an NIv2 task JSON.")
            rows, id_cols = self._read_local(path)
            paths = [path]
            info_dir = path.parent
        elif (d := benchmark_dir(self.data_root, "civil_comments")) and any((d / n).is_file() for n in LOCAL_CSV_NAMES):
            path = next(d / n for n in LOCAL_CSV_NAMES if (d / n).is_file())
            rows, id_cols = read_csv_rows(path, p)
            paths, info_dir = [path], d
            if (d / "train.csv").is_file() and p.k_shot and not p.train_file:
                pool_rows, _ = read_csv_rows(d / "train.csv", p)
                paths.append(d / "train.csv")
        elif (d := benchmark_dir(self.data_root, "civil_comments_niv2")) and (d / NIV2_FILE).is_file():
            rows = read_niv2(d / NIV2_FILE)
            paths, info_dir = [d / NIV2_FILE], d
        else:
            hub = HubSource(self.name, hf_id=p.hf_id, revision=p.hf_revision, allow_modified=self.allow_modified_data)
            rows, pool_rows = self._read_hub(hub)
            paths, info_dir = [], None
        if p.train_file:
            tpath = Path(p.train_file).expanduser()
            if not tpath.is_file():
                raise UserError(f"The CivilComments training file {str(tpath)!r} does not exist.")
            pool_rows, _ = self._read_local(tpath)
            paths.append(tpath)
        if info_dir is not None:
            info = local_dataset_info(self.name, info_dir, paths, allow_modified=self.allow_modified_data)
        else:
            info = hub.info()
        if not rows:
            raise DataError("civil_comments: no labelled comments found.")
        pool = [yn.Exemplar(id=f"pool:{r['id']}" if pool_rows is not None else r["id"], text=r["text"], label=r["label"])
                for r in (pool_rows if pool_rows is not None else rows)]
        rows = tc.seeded_sample(rows, p.n, p.seed)
        items = []
        for r in rows:
            ex = yn.choose_exemplars(pool, p.k_shot, p.seed, r["id"], r["text"])
            items.append(Item(id=r["id"], cluster=r["id"], data={
                "text": r["text"], "label": r["label"], "identities": r["identities"], "identity_columns": id_cols,
                "exemplars": [{"id": e.id, "text": e.text, "label": e.label} for e in ex],
            }))
        return info, items

    def _read_local(self, path: Path) -> tuple[list[dict[str, Any]], list[str]]:
        if path.suffix.lower() == ".json":
            return read_niv2(path), []
        return read_csv_rows(path, self.params)

    def _read_hub(self, hub: HubSource) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
        p = self.params

        def rows_of(split: str) -> list[dict[str, Any]]:
            ds = hub.load(None, split)
            return [{"id": f"{split}:{i}", "text": r["text"], "label": int(float(r["toxicity"]) >= p.label_threshold),
                     "identities": []} for i, r in enumerate(ds)]

        return rows_of(p.hf_split), (rows_of(p.hf_train_split) if p.k_shot else None)

    def record_fields(self, item: Item) -> dict[str, Any]:
        ids = list(item.data["identities"])
        return {"identities": ids, "identity_columns": list(item.data["identity_columns"]),
                "subgroups": {f"identity:{c}": "1" for c in ids}}

    def labels(self, record: dict[str, Any]) -> list[str]:
        return [f"identity={c}" for c in record.get("identities", ())]

    def table(self, records: Sequence[dict[str, Any]]) -> ItemTable:
        """The classification table; its identity subgroups are the identity columns of the run
        (every record carries the same list; the first record's is taken, error or not)."""
        columns = tuple(dict.fromkeys(records[0].get("identity_columns", ()))) if records else ()
        return yn.classification_table(records, self.labels, [f"identity={c}" for c in columns],
                                       {"identity_columns": columns})

    def metrics(self, table: ItemTable) -> list[Declaration]:
        """AUC, accuracy, mean p_yes and positive rate overall; per identity column the Borkan
        subgroup, BPSN and BNSP AUCs and the accuracy; their power means (p = ``power``) over the
        identities where they are defined, and the Jigsaw final bias score."""
        decls: list[Declaration] = list(yn.classification_metrics(table, per_label=False))
        columns = table.meta["identity_columns"]
        if not columns:
            return decls
        labels = [f"identity={c}" for c in columns]
        for lab in labels:
            decls += [Metric(f"{kind}_auc", yn.BorkanAUC(kind), yn.LABELS, (lab,)) for kind in ("subgroup", "bpsn", "bnsp")]
            decls.append(Metric("accuracy", Mean("correct"), yn.LABELS, (lab,)))
        p = self.params.power

        def bias_summary(res: Results, _table: ItemTable) -> dict[MetricKey, Values]:
            per = {m: np.stack([res.value((m, lab)) for lab in labels], axis=1) for m in BORKAN}
            out: dict[MetricKey, Values] = {}
            for m, vals in per.items():
                out[(f"{m}_power_mean", "")] = (np.array([yn.generalized_mean(row, p) for row in vals]),
                                                (~np.isnan(vals)).sum(axis=1).astype(float))
            auc = res.value(("auc", ""))
            score = [yn.jigsaw_bias_score(auc[i], *(per[m][i] for m in BORKAN), p=p) for i in range(res.size)]
            out[("bias_score", "")] = (np.array(score), res.count(("auc", "")))
            return out

        return [*decls, Derived(bias_summary)]


BORKAN = ("subgroup_auc", "bpsn_auc", "bnsp_auc")
