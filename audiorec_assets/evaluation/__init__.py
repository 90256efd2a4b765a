"""Evaluation: per-user ranking metrics with CIs, paired significance tests, tables and plots.
Light imports only (numpy, pandas); scipy and matplotlib load inside the functions that need them.
"""

from audiorec_assets.evaluation.metrics import METRICS, per_user_metrics, summarise
from audiorec_assets.evaluation.significance import PairedResult, paired_bootstrap

__all__ = ["METRICS", "PairedResult", "paired_bootstrap", "per_user_metrics", "summarise"]
