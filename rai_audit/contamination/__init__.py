"""Train/test contamination: did a tuned model train on the items it is graded on?

``ngrams`` normalises text and hashes its word n-grams; ``fingerprint`` holds the n-gram hashes of
a training set (what the finetune stage writes next to the model it exports); ``check`` tests a
probe's items against a fingerprint. The method follows the GPT-3 decontamination study (Brown et
al. 2020, "Language Models are Few-Shot Learners", appendix C): an item is *overlapping* when any
13-gram of its normalised text occurs in the training data; FLAN (Wei et al. 2021, appendix C)
applied the same analysis to instruction tuning.
"""

from rai_audit.contamination.check import ProbeContamination, check_items
from rai_audit.contamination.fingerprint import TrainingFingerprint, load_training_data

__all__ = ["ProbeContamination", "TrainingFingerprint", "check_items", "load_training_data"]
