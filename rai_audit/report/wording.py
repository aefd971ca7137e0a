"""The report's fixed wording: how the statistics work, the known limitations, the map from report
sections to EU AI Act Annex XI and the NIST AI RMF "Measure" function, and the sign-off fields.
Every format shows the same text (the JSON report carries it too)."""

from __future__ import annotations

STATISTICS_TEXT = [
    "Differences are model B minus model A on the same items, paired by item id; items where either run recorded an error are left out and counted.",
    "Probe metrics (including ratio metrics): paired cluster bootstrap (one resample of the benchmark's clusters applied to both models; percentile 95% CI; Efron & Tibshirani 1993; Field & Welsh 2007) and a paired permutation test swapping the two models' records within whole clusters (for large probes, where that needs too many recomputations, a Wald test with the bootstrap standard error; each row names its method).",
    "Binary per-item outcomes without clusters: exact McNemar test (McNemar 1947) and the Agresti-Min (2005) adjusted-Wald 95% CI of the paired difference in proportions.",
    "Continuous per-item outcomes: paired bootstrap 95% CI of the mean difference and a paired sign-flip permutation test (exact for up to 12 clusters).",
    "p-values are corrected across the subgroups of each metric (one family per probe, source and metric): Holm (1979) by default, or Benjamini-Hochberg (1995).",
    "Every row shows its minimum detectable effect (MDE): the smallest change its n detects with a two-sided test at alpha 0.05 with power 0.8 (Connor 1987 for paired proportions; (z_{1-a/2} + z_{0.8}) x SE otherwise, Bloom 1995). Where a difference is not significant, read the MDE: not significant does not mean no difference.",
    "A 95% CI is never given for a row resting on a single item or cluster ('n/a (n=1)'): its interval would be one point. Rows with fewer items or clusters than the gate policy's minimum support are 'insufficient data' in the gate and flagged on page 1.",
]

LIMITATIONS = [
    "Toxicity classifiers score text that merely mentions some identity groups as more toxic (Dixon et al. 2018, 'Measuring and Mitigating Unintended Bias in Text Classification') and penalise some dialects such as African-American English (Sap et al. 2019, 'The Risk of Racial Bias in Hate Speech Detection'). A toxicity difference can reflect what a model talks about, not how.",
    "Absolute toxicity numbers depend on the classifier, its version and the threshold and operator; only compare numbers produced by the same scorer identity (recorded below). Hosted classifiers change over time (Pozzobon et al. 2023, 'On the Challenges of Using Black-Box APIs for Toxicity Evaluation in Research').",
    "Several fairness benchmarks have documented validity problems: many CrowS-Pairs and StereoSet items are ambiguous, ungrammatical or not about stereotypes (Blodgett et al. 2021, 'Stereotyping Norwegian Salmon'); Winogender and WinoBias are small, use binary gender and US occupation statistics; BBQ reflects US English social contexts.",
    "Benchmarks probe behaviour on benchmark prompts; they do not represent a deployment's users or inputs, and passing them does not show a model is safe or unbiased.",
    "Absence of a significant difference is not evidence of no difference: read the minimum detectable effect. Corrections are applied within each metric's subgroups, not across all metrics and probes.",
    "The refusal rate comes from an English phrase-matching detector: it misses soft refusals and flags some apologies that are not refusals.",
]

EU_AI_ACT = [
    {
        "item": "Annex XI, Section 2, point 1",
        "requirement": "Evaluation strategies and results, on public evaluation protocols and tools or other methodologies, including evaluation criteria, metrics and the method for identifying limitations.",
        "sections": ["Methodology", "Results by probe", "Subgroup deltas", "Known limitations"],
    },
    {
        "item": "Annex XI, Section 2, point 2",
        "requirement": "Where applicable, measures for adversarial testing and model adaptations, including alignment and fine-tuning.",
        "sections": ["Summary", "Results by probe (before/after fine-tuning)", "Provenance (fine-tuning manifest)"],
    },
    {
        "item": "Annex XI, Section 1, point 2(b)",
        "requirement": "Design specifications of the model and training process, including training methodology.",
        "sections": ["Provenance"],
    },
    {
        "item": "Annex XI, Section 1, point 2(c)",
        "requirement": "Information on the data used for training, testing and validation, including provenance.",
        "sections": ["Data sets", "Provenance"],
    },
]

NIST_MEASURE = [
    {"item": "MEASURE 1.1", "requirement": "Approaches and metrics for the identified risks are selected; risks not measured are documented.", "sections": ["Methodology", "Known limitations"]},
    {"item": "MEASURE 2.1", "requirement": "Test sets, metrics and details of the tools used in TEVV are documented.", "sections": ["Data sets", "Methodology", "Provenance"]},
    {"item": "MEASURE 2.5", "requirement": "Validity and reliability are demonstrated; limits of generalisability are documented.", "sections": ["Results by probe (CIs, MDE)", "Known limitations"]},
    {"item": "MEASURE 2.6", "requirement": "The system is evaluated for safety risks.", "sections": ["Results by probe (toxicity)", "Worst items", "Gate"]},
    {"item": "MEASURE 2.11", "requirement": "Fairness and bias are evaluated and results documented.", "sections": ["Results by probe (bias)", "Subgroup deltas"]},
    {"item": "MEASURE 2.13", "requirement": "The effectiveness of the TEVV metrics and processes is evaluated and documented.", "sections": ["Confounders", "Known limitations"]},
    {"item": "MEASURE 3.1", "requirement": "Risks are tracked over time.", "sections": ["Gate", "Provenance (run ids)"]},
]

SIGNOFF_FIELDS = ["prepared_by", "reviewed_by", "approved_by", "date", "decision", "notes"]

COMPLIANCE_DISCLAIMER = "A navigation aid from report sections to the items they inform; not legal advice and not a conformity assessment."
