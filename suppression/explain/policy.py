"""The pre-dial policy's verdict for one explained number, at the explained moment.

Explain answers from the lists as they stood at a version (rebuilt from a
snapshot and the change archive); this runs the same decision a ``Check``
runs (:func:`~suppression.policy.batch.check_with_policy`) over that view.
"""

from __future__ import annotations

import dataclasses

from suppression.checker import Verdict
from suppression.explain.model import DECIDED_UNDER_TODAYS_POLICY, PolicyExplanation
from suppression.lists import ListView
from suppression.policy.batch import PolicyRequest, check_with_policy
from suppression.policy.store import Served

__all__ = ["explain_policy"]


def explain_policy(
    view: ListView, served: Served, number: int, decided_at_ms: int, request: PolicyRequest
) -> PolicyExplanation:
    """Decide ``number`` on ``view`` at ``decided_at_ms`` under ``request``'s policy.

    Raises:
        InvalidRequestError: an unknown policy, or bad consent days.
        UnknownListError: a list of the policy did not exist at that version.
    """
    asked = dataclasses.replace(request, at_ms=decided_at_ms)
    outcome = check_with_policy(
        view, served.policies, asked, [number], dated=served.dated, attempts=view.attempts
    )
    answer = outcome.policy
    assert answer is not None  # check_with_policy always answers under a policy
    rules, exemptions = answer.rules[0], answer.exemptions[0]
    return PolicyExplanation(
        policy=answer.policy,
        policy_version=answer.version,
        verdict=Verdict(outcome.verdicts[0]).name,
        rules=tuple(name for bit, name in enumerate(answer.rule_names) if rules >> bit & 1),
        exemptions=tuple(
            name for bit, name in enumerate(answer.exemption_names) if exemptions >> bit & 1
        ),
        earliest_ms=int(answer.earliest_ms[0]),
        decided_at_ms=decided_at_ms,
        note=DECIDED_UNDER_TODAYS_POLICY.format(version=answer.version),
    )
