"""Read-only queries over a state view, one import for the node, the CLI and the audit.

Rules: pure functions of a ``StateView``; they never write and never raise on a missing
record (they return ``None`` or an empty result).
"""

from __future__ import annotations

from contracts.deliberations import current_deliberation, deliberation, sitting
from contracts.engine import validator_set
from contracts.governance import parameter, parameters, proposal
from contracts.identity import (
    MemberInfo,
    active_municipalities,
    member,
    member_roles,
    members_of,
    municipality,
)
from contracts.notary import notarised
from contracts.reports import report, report_status
from contracts.social_aid import payment, scheme, scheme_balance

__all__ = [
    "MemberInfo",
    "active_municipalities",
    "current_deliberation",
    "deliberation",
    "member",
    "member_roles",
    "members_of",
    "municipality",
    "notarised",
    "parameter",
    "parameters",
    "payment",
    "proposal",
    "report",
    "report_status",
    "scheme",
    "scheme_balance",
    "sitting",
    "validator_set",
]
