"""Trajectory audits: the same probes, on the same items, along a finetune's steps (or along the
number of mixture tasks), each point paired with the base model.

Every peer measures end points; the Flan papers' findings are about scaling (Wei et al. 2021,
Chung et al. 2022). A trajectory shows *when* during tuning a toxicity or bias metric moved, and
lets a team stop at the last checkpoint that still passes its gate.

- :mod:`.model`: the data types (points, per-checkpoint rows, trends, the analysis);
- :mod:`.plan`: which positions are audited, the trajectory's id, the cost plan line;
- :mod:`.analysis`: per-checkpoint paired statistics (Holm over checkpoints and rows) and trends;
- :mod:`.gate`: gates on trajectories and the selection of a checkpoint to ship;
- :mod:`.lookup`: finding a trajectory by full id, unique prefix or "latest";
- :mod:`.run`: the orchestration (finetune with checkpoint exports, probe each point, record).
"""
