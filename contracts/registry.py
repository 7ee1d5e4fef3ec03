"""The contract framework: contracts, their actions, payload schemas and permissions.

Rules:
- An action runs in four steps, and the first failure ends it with a stable code:
  1. lookup: the contract and action exist (``unknown_contract``, ``unknown_action``);
  2. signer: the key is enrolled and not revoked (``unknown_signer``, ``signer_revoked``);
  3. schema: every field has its type, size, range and pattern, no field is missing and
     no unknown field is present (``invalid_payload``, naming the field): a payload can
     therefore never smuggle personal data in a field the schema does not know; every
     free-text field (text without a pattern or a closed set of values) passes the
     personal-data guard (``personal_data``, see ``contracts.personal_data``);
  4. permission: the signer holds one of the action's roles (``not_permitted``) in the
     municipality the payload names (``wrong_municipality``);
  then ``validate`` (reads only, raises ``Rejection``) and ``apply`` (writes, returns the
  receipt data). The engine runs both in a throw-away overlay.
- Schemas accept only JSON-compatible values: str, int (never bool), bool, lists of str.
- A rejection message is for a clerk: it says what is wrong, with the numbers, and what
  to do; codes are stable identifiers that software may branch on.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, NoReturn

from contracts import keys
from contracts.personal_data import check_free_text
from contracts.rejection import Rejection, reject
from contracts.view import BlockEnv, Overlay, StateView
from ledger.encoding import Value
from ledger.genesis import ROLES
from ledger.lru import Lru
from ledger.records import Transaction
from ledger.siret import siret_problem

__all__ = ["Rejection", "reject"]  # re-exported: every contract imports them from here

ACTION_FIELDS_MAX = 32
SCHEMA_PASSES_MAX = 32_768
"""Transaction ids a registry remembers as having passed their schema (about 4 MB): more
than a node holds pending and in flight, so a transaction is checked once per node."""
STR_LIST_ITEMS_MAX = 64
INT_SAFE_MAX = 2**53 - 1
"""Largest integer a payload may carry: JSON clients (JavaScript) represent it exactly."""


DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
MONTH_RE = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")
_EPOCH = date(1970, 1, 1)
_MS_PER_DAY = 86_400_000


def block_date(time_ms: int) -> str:
    """The UTC calendar date (ISO) of a block time: integer arithmetic, no clock."""
    return (_EPOCH + timedelta(days=time_ms // _MS_PER_DAY)).isoformat()


def euros(cents: int) -> str:
    """``123456`` -> ``"1234.56 €"``: money shown to clerks, without floats."""
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d} €"


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:40] + "…")
    return type(value).__name__


# ---------------------------------------------------------------- payload schema
@dataclass(frozen=True, slots=True)
class Field:
    """One payload field: its type and bounds.

    ``kind`` is ``str``, ``int``, ``bool``, ``str_list``, ``int_list`` (items within
    ``int_min``..``int_max``, repeats allowed), ``date`` (ISO ``YYYY-MM-DD``, a real
    calendar date) or ``month`` (``YYYY-MM``)."""

    name: str
    kind: str
    required: bool = True
    bytes_max: int = 256
    """For str (and each str_list item): most UTF-8 bytes; empty strings are refused."""
    pattern: re.Pattern[str] | None = None
    """For str (and each str_list item): the whole value must match."""
    hint: str = ""
    """What a valid value looks like, for the error message (e.g. "14 digits")."""
    int_min: int = 0
    int_max: int = INT_SAFE_MAX
    choices: tuple[str, ...] = ()
    """For str and str_list items: the allowed values, if the set is closed."""
    items_max: int = STR_LIST_ITEMS_MAX
    """For str_list and int_list: most items; str_list items must be distinct."""
    doc: str = ""
    value_check: Callable[[str], str | None] | None = None
    """For str: a rule beyond the pattern (a check digit...): returns what is wrong."""
    street_address_allowed: bool = False
    """For free text: the field locates a place, so a street number is not refused."""

    def check(self, value: Any) -> None:
        """Raise ``Rejection("invalid_payload")`` naming this field unless ``value`` fits."""
        if self.kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                self._bad("must be a whole number")
            if not self.int_min <= value <= self.int_max:
                self._bad(f"must be between {self.int_min} and {self.int_max} (got {value})")
        elif self.kind == "bool":
            if not isinstance(value, bool):
                self._bad("must be true or false")
        elif self.kind == "str":
            self._check_text(value, "")
        elif self.kind == "date":
            if not isinstance(value, str) or not DATE_RE.fullmatch(value):
                self._bad(f"must be an ISO date YYYY-MM-DD (got {_shown(value)})")
            try:
                date.fromisoformat(value)
            except ValueError:
                self._bad(f"is not a real calendar date (got {value!r})")
        elif self.kind == "month":
            if not isinstance(value, str) or not MONTH_RE.fullmatch(value):
                self._bad(f"must be a month YYYY-MM (got {_shown(value)})")
        elif self.kind == "str_list":
            if not isinstance(value, list) or not 1 <= len(value) <= self.items_max:
                self._bad(f"must be a list of 1 to {self.items_max} values")
            for position, item in enumerate(value):
                self._check_text(item, f" (item {position + 1})")
            if len(set(value)) != len(value):
                self._bad("must not repeat a value")
        elif self.kind == "int_list":
            if not isinstance(value, list) or not 1 <= len(value) <= self.items_max:
                self._bad(f"must be a list of 1 to {self.items_max} whole numbers")
            for position, item in enumerate(value):
                if (isinstance(item, bool) or not isinstance(item, int)
                        or not self.int_min <= item <= self.int_max):
                    self._bad(f"item {position + 1} must be a whole number between "
                              f"{self.int_min} and {self.int_max} "
                              f"(got {item if isinstance(item, int) else _shown(item)})")
        else:  # a schema bug, not bad input
            raise AssertionError(f"unknown field kind {self.kind}")

    def _check_text(self, value: Any, where: str) -> None:
        if not isinstance(value, str):
            self._bad(f"must be text{where}")
        size = len(value.encode("utf-8"))
        if not 1 <= size <= self.bytes_max:
            self._bad(f"must be 1 to {self.bytes_max} bytes of text{where} (got {size})")
        if self.choices and value not in self.choices:
            self._bad(f"must be one of {', '.join(self.choices)}{where} (got {value!r})")
        if self.pattern is not None and not self.pattern.fullmatch(value):
            self._bad(f"must be {self.hint or self.pattern.pattern}{where} (got {_shown(value)})")
        if self.value_check is not None:
            problem = self.value_check(value)
            if problem is not None:
                self._bad(f"{problem}{where} (got {_shown(value)})")
        if self.pattern is None and not self.choices:
            check_free_text(self.name, value, street_address_allowed=self.street_address_allowed)

    def _bad(self, what: str) -> NoReturn:
        reject("invalid_payload", f"the field {self.name} {what}")


def text(name: str, bytes_max: int = 256, *, required: bool = True,
         pattern: re.Pattern[str] | None = None, hint: str = "",
         choices: tuple[str, ...] = (), doc: str = "",
         value_check: Callable[[str], str | None] | None = None,
         street_address_allowed: bool = False) -> Field:
    """A text field; without a pattern or choices it is free text, and guarded."""
    return Field(name, "str", required, bytes_max, pattern, hint, choices=choices, doc=doc,
                 value_check=value_check, street_address_allowed=street_address_allowed)


def siret(name: str, doc: str, *, required: bool = True) -> Field:
    """A SIRET field: 14 digits and the check digit (``ledger.siret``)."""
    return text(name, 14, pattern=keys.SIRET_RE, hint="the 14-digit SIRET", doc=doc,
                required=required, value_check=siret_problem)


def iso_date(name: str, *, required: bool = True, doc: str = "") -> Field:
    return Field(name, "date", required, doc=doc)


def month(name: str, *, required: bool = True, doc: str = "") -> Field:
    return Field(name, "month", required, doc=doc)


def integer(name: str, int_min: int = 0, int_max: int = INT_SAFE_MAX, *,
            required: bool = True, doc: str = "") -> Field:
    return Field(name, "int", required, int_min=int_min, int_max=int_max, doc=doc)


def flag(name: str, *, required: bool = True, doc: str = "") -> Field:
    return Field(name, "bool", required, doc=doc)


def texts(name: str, *, choices: tuple[str, ...] = (), items_max: int = STR_LIST_ITEMS_MAX,
          bytes_max: int = 64, required: bool = True, doc: str = "") -> Field:
    return Field(name, "str_list", required, bytes_max, choices=choices, items_max=items_max,
                 doc=doc)


def integers(name: str, int_min: int = 0, int_max: int = INT_SAFE_MAX, *,
             items_max: int = STR_LIST_ITEMS_MAX, required: bool = True, doc: str = "") -> Field:
    return Field(name, "int_list", required, int_min=int_min, int_max=int_max,
                 items_max=items_max, doc=doc)


SIRET = siret("siret", "SIRET of the municipality the action writes for (the signer's).")
HEX64_HINT = "64 lowercase hexadecimal characters"


def hex64(name: str, *, required: bool = True, doc: str = "") -> Field:
    return text(name, 64, pattern=keys.HEX64_RE, hint=HEX64_HINT, required=required, doc=doc)


def check_payload(fields: tuple[Field, ...], payload: Mapping[str, Any], where: str) -> None:
    """Validate ``payload`` against ``fields``; fields may be absent or null only if
    optional, and unknown fields are refused (in sorted order, so the message is stable)."""
    known = {f.name for f in fields}
    for name in sorted(payload):
        if name not in known:
            reject(
                "invalid_payload",
                f"the field {name} is not part of {where}; remove it "
                f"(accepted fields: {', '.join(sorted(known))})",
            )
    for f in fields:
        value = payload.get(f.name)
        if value is None:
            if f.required:
                reject("invalid_payload", f"the field {f.name} is missing; {where} needs it")
            continue
        f.check(value)


# ---------------------------------------------------------------- signers
@dataclass(frozen=True, slots=True)
class Signer:
    """The signer of a transaction as the identity contract knows it."""

    key_hex: str
    siret: str
    roles: tuple[str, ...]
    person: str
    """The member behind the key, stable across rotations (``identity`` rules)."""


def load_signer(state: StateView, public_key: bytes, height: int) -> Signer:
    """The enrolled, unrevoked member behind ``public_key``, or a rejection."""
    key_hex = public_key.hex()
    record = keys.read_map(state, keys.member_key(key_hex))
    if record is None:
        reject(
            "unknown_signer",
            f"the key {key_hex[:16]}… is not enrolled in any municipality; "
            "ask an administrator of your municipality to enroll it",
        )
    revoked = record["revoked_height"]
    if revoked is not None and height >= revoked:
        reject(
            "signer_revoked",
            f"the key {key_hex[:16]}… was revoked at height {revoked} and can no longer "
            "sign; use your current key or ask an administrator",
        )
    return Signer(key_hex, record["siret"], tuple(record["roles"]), record["person"])


# ---------------------------------------------------------------- actions
@dataclass(frozen=True, slots=True)
class Context:
    """Everything an action may use: its state overlay, the block, the tx, the signer."""

    state: Overlay
    env: BlockEnv
    tx: Transaction
    payload: Mapping[str, Any]
    signer: Signer

    def get(self, name: str, default: Any = None) -> Any:
        value = self.payload.get(name)
        return default if value is None else value


Validate = Callable[[Context], None]
Apply = Callable[[Context], dict[str, Value]]


@dataclass(frozen=True, slots=True)
class Action:
    """One action of a contract."""

    name: str
    fields: tuple[Field, ...]
    roles: tuple[str, ...]
    """Roles allowed to run it (any one suffices), in the signer's municipality."""
    municipality_field: str | None
    """Payload field naming the SIRET written for; must be the signer's municipality."""
    validate: Validate
    apply: Apply
    doc: str = ""

    def __post_init__(self) -> None:
        assert len(self.fields) <= ACTION_FIELDS_MAX, "schemas are bounded"
        assert set(self.roles) <= set(ROLES) and self.roles, "roles come from genesis ROLES"
        names = [f.name for f in self.fields]
        assert len(set(names)) == len(names), "field names are distinct"
        assert self.municipality_field is None or self.municipality_field in names


@dataclass(frozen=True, slots=True)
class Contract:
    name: str
    actions: tuple[Action, ...]
    doc: str = ""

    def action(self, name: str) -> Action | None:
        for action in self.actions:
            if action.name == name:
                return action
        return None


@dataclass(frozen=True, slots=True)
class Registry:
    """The contracts of a network, by name."""

    contracts: tuple[Contract, ...] = field(default_factory=tuple)
    _schema_passed: Lru[bytes, None] = field(
        default_factory=lambda: Lru(SCHEMA_PASSES_MAX), init=False, repr=False,
        compare=False)
    """Ids of transactions whose payload passed their action's schema, the most recent
    ``SCHEMA_PASSES_MAX`` (see ``check_schema``)."""

    def check_schema(self, tx: Transaction) -> Action:
        """Steps 1 and 3 of the module rules, which need no state: the action of ``tx``,
        or a rejection. A node meets each transaction three times (admission, the check
        of a proposal before its vote, execution) and the schema check was about an
        eighth of its CPU: a pass is remembered by transaction id (the id covers the
        contract, the action and the payload, and the schemas are code), so the answer
        is the same, computed once. Refusals are not remembered: they raise at once."""
        action = self.lookup(tx.contract, tx.action)
        if not self._schema_passed.touch(tx.tx_id):
            check_payload(action.fields, tx.payload, f"{tx.contract}.{tx.action}")
            self._schema_passed.remember(tx.tx_id, None)
        return action

    def lookup(self, contract: str, action: str) -> Action:
        for c in self.contracts:
            if c.name == contract:
                found = c.action(action)
                if found is None:
                    names = ", ".join(a.name for a in c.actions)
                    reject("unknown_action",
                           f"the contract {contract} has no action {action!r} (it has: {names})")
                return found
        names = ", ".join(c.name for c in self.contracts)
        reject("unknown_contract", f"there is no contract {contract!r} (contracts: {names})")


def _town(state: StateView, siret: str) -> str:
    record = keys.read_map(state, keys.municipality_key(siret))
    return f"{record['name']} ({siret})" if record is not None else siret


def authorize(state: StateView, action: Action, where: str, signer: Signer,
              payload: Mapping[str, Any]) -> None:
    """Refuse unless the signer holds a role of ``action`` for the municipality it names."""
    if not set(signer.roles) & set(action.roles):
        reject(
            "not_permitted",
            f"{where} needs the role {' or '.join(action.roles)}; your key holds "
            f"{', '.join(signer.roles)} in {_town(state, signer.siret)}",
        )
    if action.municipality_field is not None:
        named = payload[action.municipality_field]
        if named != signer.siret:
            reject(
                "wrong_municipality",
                f"{action.municipality_field} names {_town(state, named)} but your key "
                f"belongs to {_town(state, signer.siret)}: nobody writes for another "
                "municipality",
            )


def admit(registry: Registry, state: StateView, tx: Transaction, height: int
          ) -> tuple[Action, Signer]:
    """Steps 1-4 of the module rules; cheap, read-only, shared by mempool and engine."""
    action = registry.lookup(tx.contract, tx.action)
    signer = load_signer(state, tx.signer, height)
    registry.check_schema(tx)
    authorize(state, action, f"{tx.contract}.{tx.action}", signer, tx.payload)
    return action, signer
