"""Identity and roles: enroll, rotate, revoke, scoped to the admin's own municipality."""

from __future__ import annotations

from contracts.queries import member, member_roles, members_of
from tests.vectors.contracts.scenario import Chain, pub, siret


def enroll(chain: Chain, who: str = "montreuil.admin", town: str = "montreuil",
           key: str = "montreuil.newclerk", roles: list[str] | None = None) -> str:
    return chain.do(who, "identity", "enroll",
                    {"siret": siret(town), "key": pub(key), "roles": roles or ["clerk"]}).code


def test_genesis_members_hold_their_roles() -> None:
    chain = Chain()
    assert member_roles(chain.state, pub("montreuil.clerk")) == ("clerk",)
    assert member_roles(chain.state, pub("pantin.agent")) == ("social_aid_agent",)
    assert member_roles(chain.state, pub("nobody")) == ()
    assert len(members_of(chain.state, siret("bagnolet"))) == 5


def test_admin_enrolls_a_key_that_can_then_sign() -> None:
    chain = Chain()
    assert enroll(chain, roles=["clerk", "auditor"]) == "ok"
    assert member_roles(chain.state, pub("montreuil.newclerk")) == ("clerk", "auditor")
    receipt = chain.do("montreuil.newclerk", "notary", "anchor",
                       {"siret": siret("montreuil"), "sha256": "ab" * 32,
                        "document_type": "arrete", "reference": "A-1"})
    assert receipt.code == "ok"


def test_only_an_admin_enrolls() -> None:
    chain = Chain()
    receipt = chain.do("montreuil.clerk", "identity", "enroll",
                       {"siret": siret("montreuil"), "key": pub("x"), "roles": ["clerk"]})
    assert receipt.code == "not_permitted"
    assert receipt.message == (
        "identity.enroll needs the role admin; your key holds clerk in "
        "Montreuil (21930048000015)"
    )


def test_an_admin_cannot_enroll_for_another_municipality() -> None:
    chain = Chain()
    receipt = chain.do("montreuil.admin", "identity", "enroll",
                       {"siret": siret("pantin"), "key": pub("x"), "roles": ["admin"]})
    assert receipt.code == "wrong_municipality"
    assert "siret names Pantin (21930055500014)" in receipt.message
    assert "your key belongs to Montreuil (21930048000015)" in receipt.message
    assert member(chain.state, pub("x")) is None


def test_an_admin_cannot_revoke_another_municipalitys_key() -> None:
    chain = Chain()
    receipt = chain.do("montreuil.admin", "identity", "revoke",
                       {"siret": siret("montreuil"), "key": pub("pantin.clerk")})
    assert receipt.code == "wrong_municipality"
    assert "belongs to municipality 21930055500014, not yours" in receipt.message


def test_a_key_is_enrolled_once_ever() -> None:
    chain = Chain()
    assert enroll(chain, key="pantin.clerk") == "key_already_enrolled"
    assert enroll(chain, key="montreuil.validator") == "key_already_enrolled"
    receipt = chain.do("montreuil.admin", "identity", "enroll",
                       {"siret": siret("montreuil"), "key": pub("pantin.clerk"),
                        "roles": ["clerk"]})
    assert "is already enrolled (municipality 21930055500014)" in receipt.message


def test_unknown_roles_are_refused_by_the_schema() -> None:
    chain = Chain()
    receipt = chain.do("montreuil.admin", "identity", "enroll",
                       {"siret": siret("montreuil"), "key": pub("x"), "roles": ["mayor"]})
    assert receipt.code == "invalid_payload"
    assert receipt.message.startswith("the field roles must be one of admin, clerk")


def test_a_revoked_key_signs_nothing_after_its_revocation() -> None:
    chain = Chain()
    assert chain.do("montreuil.admin", "identity", "revoke",
                    {"siret": siret("montreuil"), "key": pub("montreuil.clerk")}).code == "ok"
    revoked_at = chain.height
    receipt = chain.do("montreuil.clerk", "notary", "anchor",
                       {"siret": siret("montreuil"), "sha256": "cd" * 32,
                        "document_type": "arrete", "reference": "A-2"})
    assert receipt.code == "signer_revoked"
    assert f"was revoked at height {revoked_at}" in receipt.message
    info = member(chain.state, pub("montreuil.clerk"))
    assert info is not None and info.revoked_height == revoked_at and not info.active


def test_revocation_takes_effect_for_the_rest_of_its_own_block() -> None:
    chain = Chain()
    revoke = chain.tx("montreuil.admin", "identity", "revoke",
                      {"siret": siret("montreuil"), "key": pub("montreuil.clerk")})
    anchor = chain.tx("montreuil.clerk", "notary", "anchor",
                      {"siret": siret("montreuil"), "sha256": "ef" * 32,
                       "document_type": "arrete", "reference": "A-3"})
    assert [r.code for r in chain.block(revoke, anchor)] == ["ok", "signer_revoked"]


def test_rotation_moves_the_roles_to_the_new_key() -> None:
    chain = Chain()
    receipt = chain.do("montreuil.admin", "identity", "rotate",
                       {"siret": siret("montreuil"), "old_key": pub("montreuil.agent"),
                        "new_key": pub("montreuil.agent-new")})
    assert receipt.code == "ok"
    assert member_roles(chain.state, pub("montreuil.agent-new")) == ("social_aid_agent",)
    old = member(chain.state, pub("montreuil.agent"))
    assert old is not None and old.replaced_by == pub("montreuil.agent-new")
    again = chain.do("montreuil.admin", "identity", "revoke",
                     {"siret": siret("montreuil"), "key": pub("montreuil.agent")})
    assert again.code == "already_revoked"


def test_the_last_admin_cannot_be_revoked() -> None:
    chain = Chain()
    receipt = chain.do("montreuil.admin", "identity", "revoke",
                       {"siret": siret("montreuil"), "key": pub("montreuil.admin")})
    assert receipt.code == "last_admin"
    assert "is the last active admin of municipality 21930048000015" in receipt.message
    assert enroll(chain, key="montreuil.admin2", roles=["admin"]) == "ok"
    assert chain.do("montreuil.admin2", "identity", "revoke",
                    {"siret": siret("montreuil"), "key": pub("montreuil.admin")}).code == "ok"


def test_revoking_an_unknown_key_names_it() -> None:
    chain = Chain()
    receipt = chain.do("montreuil.admin", "identity", "revoke",
                       {"siret": siret("montreuil"), "key": "00" * 32})
    assert receipt.code == "unknown_member"
    assert receipt.message == "key: the key 0000000000000000… is not enrolled; check the key"
