"""Named pre-dial policies: which lists suppress, what lifts them, when and how often to call.

The pure core of "may I dial this number now?": :mod:`.parse` reads the
policy file, :mod:`.decide` decides a batch. Imports nothing of ours outside
the core (and phonenumbers only for its time-zone and number-type data).
"""

from __future__ import annotations

from suppression.policy.attempts import Attempt, AttemptLog
from suppression.policy.dated import DatedList
from suppression.policy.decide import Decision, PolicyVerdict, decide
from suppression.policy.model import Policy, PolicySet
from suppression.policy.parse import load_policy_file, parse_policies

__all__ = [
    "Attempt",
    "AttemptLog",
    "DatedList",
    "Decision",
    "Policy",
    "PolicySet",
    "PolicyVerdict",
    "decide",
    "load_policy_file",
    "parse_policies",
]
