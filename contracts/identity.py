"""Identity and roles: municipalities, their member keys, and who may sign what.

Rules:
- Municipalities come from genesis (or from a passed governance proposal): name, SIRET,
  validator key, member keys with roles from ``ledger.genesis.ROLES``.
- Only an admin of a municipality enrolls, rotates or revokes keys of THAT municipality:
  every action names its SIRET (``siret``), which must be the signer's.
- A key is enrolled once, ever: a revoked key is never enrolled again, and a key that is a
  validator key is never a member key (a validator signs votes, not records).
- A revoked key signs nothing from the transaction that revokes it onwards: the framework
  (``registry.load_signer``) refuses it at any height >= its revocation height.
- A municipality keeps at least one active admin (``last_admin``): otherwise nobody could
  ever enroll a key for it again.
- A municipality's validator key is replaced only by governance
  (``governance.replace_validator_key``): the old key is retired for good
  (``retired_validator``) and never enrolled or used as a validator again.
- A municipality record may carry ``validator_address`` (``host:port``, checked by
  ``ledger.address``), written by the governance decision that adds it or replaces its
  key: where the other validators dial it. The field is absent, not null, when no
  decision gave one (municipalities of genesis or added before addresses went on chain).
- Records are never deleted: revocation sets ``revoked_height`` (and ``replaced_by`` for a
  rotation), so the history of who could sign what stays queryable.
- A member is a person, not a key: each record carries ``person``, the hex of the first
  key the person was enrolled with; a rotation hands it to the new key. Rules that need
  two different people (the four-eyes rule of social aid) compare persons, so rotating
  one's own key never makes a second approver.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from contracts import keys
from contracts.registry import SIRET, Action, Context, Contract, hex64, reject, text, texts
from contracts.view import Overlay, StateView
from ledger.encoding import Value
from ledger.genesis import ROLES, Genesis

MEMBERS_MAX = 10_000
"""Most keys ever enrolled in one municipality (bounds ``members_of`` and removal)."""
MUNICIPALITIES_MAX = 256
"""Most active municipalities (bounded by the validator set size, records.CERT_VOTES_MAX)."""


# ---------------------------------------------------------------- records and queries
@dataclass(frozen=True, slots=True)
class MemberInfo:
    """What the chain knows about a member key (query result)."""

    key_hex: str
    siret: str
    roles: tuple[str, ...]
    enrolled_height: int
    revoked_height: int | None
    replaced_by: str | None
    person: str
    """The person holding the key: the first key they were enrolled with (hex)."""

    @property
    def active(self) -> bool:
        return self.revoked_height is None


def member(state: StateView, key_hex: str) -> MemberInfo | None:
    """The member record of a key (hex), active or revoked, or ``None``."""
    record = keys.read_map(state, keys.member_key(key_hex))
    if record is None:
        return None
    return MemberInfo(key_hex, record["siret"], tuple(record["roles"]),
                      record["enrolled_height"], record["revoked_height"],
                      record["replaced_by"], record["person"])


def member_roles(state: StateView, key_hex: str) -> tuple[str, ...]:
    """Roles the key holds now: empty if unknown or revoked."""
    info = member(state, key_hex)
    return info.roles if info is not None and info.active else ()


def municipality(state: StateView, siret: str) -> dict[str, Any] | None:
    """The municipality record (name, siret, validator_key, active, heights)."""
    return keys.read_map(state, keys.municipality_key(siret))


def active_municipalities(state: StateView) -> list[str]:
    """SIRETs of the municipalities in the network now, sorted."""
    return [str(s) for s in keys.read_list(state, keys.MUNICIPALITIES_KEY)]


def roster(state: StateView, siret: str) -> dict[str, int]:
    """Counters of a municipality: keys ever enrolled, admins active now."""
    found = keys.read_map(state, keys.roster_key(siret))
    return found or {"enrolled": 0, "active_admins": 0}


def members_of(state: StateView, siret: str) -> list[MemberInfo]:
    """Every key ever enrolled in a municipality, in enrollment order."""
    found = []
    for n in range(roster(state, siret)["enrolled"]):
        info = member(state, str(keys.read(state, keys.member_index_key(siret, n))))
        assert info is not None, "the index names enrolled keys"
        found.append(info)
    return found


def validator_keys(state: StateView) -> list[str]:
    return [str(k) for k in keys.read_list(state, keys.VALIDATORS_KEY)]


# ---------------------------------------------------------------- writes shared with governance
def _sorted_insert(items: list[Any], item: Any) -> list[Any]:
    return sorted({*items, item})


def enroll_key(state: Overlay, siret: str, key_hex: str, roles: list[str], height: int,
               person: str | None = None) -> None:
    """Enroll a key; ``person`` carries over a rotated member's identity (else a new one)."""
    keys.write(state, keys.member_key(key_hex), {
        "person": key_hex if person is None else person,
        "siret": siret,
        "roles": sorted(roles, key=ROLES.index),
        "enrolled_height": height,
        "revoked_height": None,
        "replaced_by": None,
    })
    counts = roster(state, siret)
    keys.write(state, keys.member_index_key(siret, counts["enrolled"]), key_hex)
    keys.write(state, keys.roster_key(siret), {
        "enrolled": counts["enrolled"] + 1,
        "active_admins": counts["active_admins"] + ("admin" in roles),
    })


def revoke_key(state: Overlay, key_hex: str, height: int, replaced_by: str | None) -> None:
    record = keys.read_map(state, keys.member_key(key_hex))
    assert record is not None and record["revoked_height"] is None, "validated before"
    keys.write(state, keys.member_key(key_hex),
               {**record, "revoked_height": height, "replaced_by": replaced_by})
    if "admin" in record["roles"]:
        counts = roster(state, record["siret"])
        keys.write(state, keys.roster_key(record["siret"]),
                   {**counts, "active_admins": counts["active_admins"] - 1})


def add_municipality(state: Overlay, name: str, siret: str, validator_hex: str,
                     admin_hexes: list[str], height: int,
                     validator_address: str | None = None) -> None:
    """Write (or reactivate) a municipality with its validator and admin keys."""
    record: dict[str, Value] = {
        "name": name, "siret": siret, "validator_key": validator_hex, "active": True,
        "added_height": height, "removed_height": None,
    }
    if validator_address is not None:  # absent, not null: older records stay identical
        record["validator_address"] = validator_address
    keys.write(state, keys.municipality_key(siret), record)
    keys.write(state, keys.MUNICIPALITIES_KEY,
               _sorted_insert(active_municipalities(state), siret))
    keys.write(state, keys.VALIDATORS_KEY, _sorted_insert(validator_keys(state), validator_hex))
    for admin in admin_hexes:
        enroll_key(state, siret, admin, ["admin"], height)


def remove_municipality(state: Overlay, siret: str, height: int) -> None:
    """Deactivate a municipality: its validator leaves the set, all its keys are revoked."""
    record = municipality(state, siret)
    assert record is not None and record["active"], "validated before"
    keys.write(state, keys.municipality_key(siret),
               {**record, "active": False, "removed_height": height})
    keys.write(state, keys.MUNICIPALITIES_KEY,
               [s for s in active_municipalities(state) if s != siret])
    keys.write(state, keys.VALIDATORS_KEY,
               [k for k in validator_keys(state) if k != record["validator_key"]])
    for info in members_of(state, siret):
        if info.active:
            revoke_key(state, info.key_hex, height, None)


def replace_validator_key(state: Overlay, siret: str, new_hex: str,
                          validator_address: str | None, height: int) -> None:
    """Hand a municipality's validator role to ``new_hex``: the old key leaves the set
    and is retired for good; the address changes only if a new one is given."""
    record = municipality(state, siret)
    assert record is not None and record["active"], "validated before"
    old_hex = record["validator_key"]
    updated = {**record, "validator_key": new_hex}
    if validator_address is not None:
        updated["validator_address"] = validator_address
    keys.write(state, keys.municipality_key(siret), updated)
    keys.write(state, keys.VALIDATORS_KEY,
               sorted({*(k for k in validator_keys(state) if k != old_hex), new_hex}))
    keys.write(state, keys.retired_validator_key(old_hex),
               {"siret": siret, "retired_height": height, "replaced_by": new_hex})


def retired_validator(state: StateView, key_hex: str) -> dict[str, Any] | None:
    """The retirement record of a validator key replaced by governance, or ``None``."""
    return keys.read_map(state, keys.retired_validator_key(key_hex))


def validator_addresses(state: StateView) -> dict[str, str]:
    """Validator key (hex) -> ``host:port`` recorded on chain, for the active
    municipalities that have one (at most ``MUNICIPALITIES_MAX`` reads)."""
    found: dict[str, str] = {}
    for siret in active_municipalities(state):
        record = municipality(state, siret)
        if record is not None and isinstance(record.get("validator_address"), str):
            found[str(record["validator_key"])] = record["validator_address"]
    return found


def check_new_validator_key(state: StateView, key_hex: str) -> None:
    """Refuse a validator key already in the set, enrolled as a member, or retired."""
    if key_hex in validator_keys(state) or member(state, key_hex) is not None:
        reject("key_already_enrolled",
               f"validator_key {key_hex[:16]}… is already in use")
    retired = retired_validator(state, key_hex)
    if retired is not None:
        reject("key_already_enrolled",
               f"validator_key {key_hex[:16]}… was retired at height "
               f"{retired['retired_height']} (municipality {retired['siret']}); a retired "
               "key never comes back: generate a new key")


def check_new_key(state: StateView, key_hex: str, field_name: str) -> None:
    """Refuse a key already enrolled (even revoked) or used (even once) by a validator."""
    existing = member(state, key_hex)
    if existing is not None:
        reject("key_already_enrolled",
               f"{field_name}: the key {key_hex[:16]}… is already enrolled "
               f"(municipality {existing.siret}); a key is enrolled once, ever: "
               "generate a new key")
    if key_hex in validator_keys(state):
        reject("key_already_enrolled",
               f"{field_name}: the key {key_hex[:16]}… is a validator key; "
               "members sign records with their own keys: generate a new key")
    if retired_validator(state, key_hex) is not None:
        reject("key_already_enrolled",
               f"{field_name}: the key {key_hex[:16]}… was a validator key (retired); "
               "members sign records with their own keys: generate a new key")


def write_genesis(state: Overlay, genesis: Genesis) -> None:
    """The identity part of the state at version 0."""
    for m in sorted(genesis.municipalities, key=lambda m: m.siret):
        add_municipality(state, m.name, m.siret, m.validator_key.hex(), [], 0)
        for x in m.members:
            enroll_key(state, m.siret, x.key.hex(), [x.role], 0)


# ---------------------------------------------------------------- actions
def _member_here(ctx: Context, key_hex: str, field_name: str) -> MemberInfo:
    info = member(ctx.state, key_hex)
    if info is None:
        reject("unknown_member",
               f"{field_name}: the key {key_hex[:16]}… is not enrolled; check the key")
    if info.siret != ctx.signer.siret:
        reject("wrong_municipality",
               f"{field_name}: the key {key_hex[:16]}… belongs to municipality {info.siret}, "
               f"not yours ({ctx.signer.siret}): nobody writes for another municipality")
    if not info.active:
        reject("already_revoked",
               f"{field_name}: the key {key_hex[:16]}… was already revoked at height "
               f"{info.revoked_height}")
    return info


def _active_admins(state: StateView, siret: str) -> int:
    return roster(state, siret)["active_admins"]


def _validate_enroll(ctx: Context) -> None:
    check_new_key(ctx.state, ctx.payload["key"], "key")
    if roster(ctx.state, ctx.signer.siret)["enrolled"] >= MEMBERS_MAX:
        reject("too_many_members",
               f"municipality {ctx.signer.siret} has enrolled {MEMBERS_MAX} keys, the limit")


def _apply_enroll(ctx: Context) -> dict[str, Value]:
    enroll_key(ctx.state, ctx.signer.siret, ctx.payload["key"], list(ctx.payload["roles"]),
               ctx.env.height)
    return {"key": ctx.payload["key"], "roles": sorted(ctx.payload["roles"], key=ROLES.index)}


def _validate_rotate(ctx: Context) -> None:
    _member_here(ctx, ctx.payload["old_key"], "old_key")
    check_new_key(ctx.state, ctx.payload["new_key"], "new_key")


def _apply_rotate(ctx: Context) -> dict[str, Value]:
    old, new = ctx.payload["old_key"], ctx.payload["new_key"]
    info = member(ctx.state, old)
    assert info is not None
    revoke_key(ctx.state, old, ctx.env.height, new)
    enroll_key(ctx.state, info.siret, new, list(info.roles), ctx.env.height, info.person)
    return {"old_key": old, "new_key": new, "roles": list(info.roles)}


def _validate_revoke(ctx: Context) -> None:
    info = _member_here(ctx, ctx.payload["key"], "key")
    if "admin" in info.roles and _active_admins(ctx.state, info.siret) <= 1:
        reject("last_admin",
               f"the key {info.key_hex[:16]}… is the last active admin of municipality "
               f"{info.siret}; enroll another admin first (or rotate this key instead)")


def _apply_revoke(ctx: Context) -> dict[str, Value]:
    revoke_key(ctx.state, ctx.payload["key"], ctx.env.height, None)
    return {"key": ctx.payload["key"], "revoked_height": ctx.env.height}


_ROLES_FIELD = texts("roles", choices=ROLES, items_max=len(ROLES),
                     doc="Roles of the new key: admin, clerk, social_aid_agent, auditor, "
                         "intake, meter_gateway.")

CONTRACT = Contract("identity", (
    Action("enroll", (SIRET, hex64("key", doc="Public key to enroll (hex)."), _ROLES_FIELD),
           ("admin",), "siret", _validate_enroll, _apply_enroll,
           "Enroll a new member key with roles in the admin's municipality."),
    Action("rotate", (SIRET, hex64("old_key", doc="Key to retire."),
                      hex64("new_key", doc="Key that takes over its roles.")),
           ("admin",), "siret", _validate_rotate, _apply_rotate,
           "Replace a member key by a new one with the same roles; the old one is revoked."),
    Action("revoke", (SIRET, hex64("key", doc="Key to revoke."),
                      text("reason", 256, required=False, doc="Why (kept on chain).")),
           ("admin",), "siret", _validate_revoke, _apply_revoke,
           "Revoke a member key: it signs nothing from now on."),
), "Municipalities, member keys and roles.")
