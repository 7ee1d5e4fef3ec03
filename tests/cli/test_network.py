"""``tabellion network init`` and the Docker files built from what it generates."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.common import CliError
from cli.main import app
from cli.network import (
    CONTAINER_API_PORT,
    CONTAINER_CONFIG,
    CONTAINER_PEER_PORT,
    DEFAULT_BASE_PORT,
    DEMO_MUNICIPALITIES,
    MANIFEST_BYTES_MAX,
    MANIFEST_FILE,
    TAG_KEY_FILE_BYTES_MAX,
    Network,
    compose_document,
    init_network,
    load_network,
    load_tag_key,
    reference_compose,
    slug_of,
)
from ledger.crypto import load_key
from ledger.errors import KeyFileError
from ledger.genesis import ROLES, load_genesis
from node.config import load_config
from tests.cli.conftest import REPO, assert_one_line_error, invoke_cli, run_cli

MUNIS = [f"{name}:{siret}" for name, siret in DEMO_MUNICIPALITIES]


def _args(out: Path, *extra: str) -> list[str]:
    return ["network", "init", "--out", str(out), *[a for m in MUNIS for a in ("-m", m)],
            *extra]


def test_genesis_enrolls_every_generated_key_with_its_role(network: Network) -> None:
    genesis = load_genesis(network.genesis_file)
    assert [(m.name, m.siret) for m in genesis.municipalities] == list(DEMO_MUNICIPALITIES)
    assert load_network(network.root) == network
    for m, g in zip(network.municipalities, genesis.municipalities, strict=True):
        passphrase = network.passphrase_of(m).read_bytes().strip()
        validator = load_key(network.dir_of(m) / "validator.key", passphrase)
        assert validator.public_key == g.validator_key
        enrolled = {member.role: member.key for member in g.members}
        assert set(enrolled) == set(ROLES)
        for role in ROLES:
            own = network.passphrase_of(m, role).read_bytes().strip()
            assert load_key(network.key_of(m, role), own).public_key == enrolled[role]
            # one passphrase per key holder: the node operator's does not open the clerk's
            with pytest.raises(KeyFileError, match="passphrase is wrong"):
                load_key(network.key_of(m, role), passphrase)
        assert load_genesis(network.dir_of(m) / "genesis.json") == genesis


def test_secrets_are_private_and_the_tag_key_is_32_random_bytes(network: Network) -> None:
    tags = set()
    for m in network.municipalities:
        for path in (network.tag_key_of(m), network.passphrase_of(m),
                     network.passphrase_of(m, "admin"),
                     network.key_of(m, "clerk"), network.dir_of(m) / "validator.key"):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        tag = load_tag_key(network.tag_key_of(m))
        assert len(tag) == 32
        tags.add(tag)
    assert len(tags) == 4
    genesis_text = network.genesis_file.read_text()
    assert not any(tag.hex() in genesis_text for tag in tags)


def test_node_configs_point_at_each_other(network: Network) -> None:
    by_key = {m.validator_key: m for m in network.municipalities}
    ports = [p for m in network.municipalities for p in (m.api_port, m.peer_port)]
    assert len(set(ports)) == 8
    for m in network.municipalities:
        cfg = load_config(network.config_of(m))
        assert cfg.listen_api == f"127.0.0.1:{m.api_port}"
        assert cfg.listen_peer == f"127.0.0.1:{m.peer_port}"
        assert cfg.key_file == (network.dir_of(m) / "validator.key").resolve()
        assert cfg.genesis_file.is_file()
        assert cfg.data_dir == (network.dir_of(m) / "data").resolve()
        peers = {p.validator_key.hex(): p.address for p in cfg.peers}
        assert set(peers) == set(by_key) - {m.validator_key}
        for key, address in peers.items():
            assert address == f"127.0.0.1:{by_key[key].peer_port}"


def test_compose_services_ports_volumes_and_commands_match_the_network(
        network: Network) -> None:
    doc = json.loads((network.root / "compose.yaml").read_text())
    assert set(doc["services"]) == {m.slug for m in network.municipalities}
    for m in network.municipalities:
        service = doc["services"][m.slug]
        assert service["ports"] == [f"127.0.0.1:{m.api_port}:{CONTAINER_API_PORT}"]
        assert service["command"] == ["node", "start", "--config", CONTAINER_CONFIG,
                                      "--passphrase-file", "/run/secrets/passphrase"]
        config_dir, data = f"./{m.slug}:/etc/tabellion:ro", f"{m.slug}-data:/var/lib/tabellion"
        assert config_dir in service["volumes"] and data in service["volumes"]
        assert f"{m.slug}-data" in doc["volumes"]
        secret = doc["secrets"][service["secrets"][0]["source"]]["file"]
        assert (network.root / secret).resolve() == network.passphrase_of(m).resolve()
        for volume in service["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (network.root / source).exists(), volume
        assert str(CONTAINER_API_PORT) in " ".join(service["healthcheck"]["test"])
        # The container's configuration: its data volume, all interfaces, peers by name.
        inner = load_config(network.dir_of(m) / "node.docker.toml")
        assert str(inner.data_dir) == "/var/lib/tabellion"
        assert inner.listen_api == f"0.0.0.0:{CONTAINER_API_PORT}"
        assert sorted(p.address for p in inner.peers) == sorted(
            f"{o.slug}:{CONTAINER_PEER_PORT}" for o in network.municipalities if o is not m)


def test_committed_docker_compose_is_what_init_generates(tmp_path: Path) -> None:
    committed = json.loads((REPO / "docker" / "compose.yaml").read_text())
    assert committed == reference_compose()
    # Generating the network where docker/compose.yaml expects it gives the same file,
    # up to the relative paths (the reference lives one directory above the network).
    generated = init_network(tmp_path / "network", list(DEMO_MUNICIPALITIES),
                             base_port=DEFAULT_BASE_PORT)
    assert compose_document(generated, "./network", "..") == committed


def _directive(dockerfile: str, name: str) -> list[str]:
    match = re.search(rf"^{name} (\[.*\])$", dockerfile, re.M)
    assert match is not None, f"the Dockerfile has no exec-form {name}"
    value: list[str] = json.loads(match.group(1))
    return value


def test_dockerfile_default_command_is_the_compose_command(network: Network) -> None:
    text = (REPO / "docker" / "Dockerfile").read_text()
    entrypoint, cmd = _directive(text, "ENTRYPOINT"), _directive(text, "CMD")
    assert entrypoint == ["tabellion"]
    service = json.loads((network.root / "compose.yaml").read_text())["services"]["montreuil"]
    assert service["command"][: len(cmd)] == cmd
    assert "--require-hashes -r requirements.lock" in text
    assert re.search(r"^USER tabellion$", text, re.M)
    assert f"127.0.0.1:{CONTAINER_API_PORT}/healthz" in text


def _holders(base: str = "PW") -> dict[str, str]:
    """A distinct passphrase for every key holder of every demo town."""
    env = {}
    for name, _ in DEMO_MUNICIPALITIES:
        town = f"{base}_{slug_of(name).upper().replace('-', '_')}"
        env[town] = f"{name}'s operator passphrase"
        env.update({f"{town}_{role.upper()}": f"{name}'s {role} own secret" for role in ROLES})
    return env


def test_init_with_passphrase_env_writes_no_passphrase(runner: CliRunner,
                                                       tmp_path: Path) -> None:
    out = tmp_path / "prod"
    result = runner.invoke(app, _args(out, "--passphrase-env", "PW", "--base-port", "0",
                                      "--compose", "--chain-id", "prod.net"),
                           env={**_holders(), "COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    network = load_network(out)
    assert network.chain_id == "prod.net"
    assert not list(out.rglob("*passphrase"))
    m = network.municipalities[1]
    assert load_key(network.key_of(m, "admin"), b"Bagnolet's admin own secret")
    assert load_key(network.dir_of(m) / "validator.key", b"Bagnolet's operator passphrase")
    with pytest.raises(KeyFileError):
        load_key(network.key_of(m, "admin"), b"Bagnolet's operator passphrase")
    assert load_config(network.config_of(m)).passphrase_env == "PW"  # what the node reads
    service = json.loads((out / "compose.yaml").read_text())["services"][m.slug]
    assert service["environment"] == {"PW": "${PW_BAGNOLET:?set PW_BAGNOLET}"}
    assert "Next:" in result.stdout and "Bagnolet" in result.stdout


def test_with_passphrase_env_no_role_shares_its_passphrase_across_towns(
        runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "towns"
    result = runner.invoke(app, _args(out, "--passphrase-env", "PW", "--base-port", "0"),
                           env=_holders())
    assert result.exit_code == 0, result.output
    network = load_network(out)
    first, second = network.municipalities[0], network.municipalities[1]
    assert load_key(network.key_of(first, "clerk"), b"Montreuil's clerk own secret")
    with pytest.raises(KeyFileError):  # Montreuil's clerk cannot open Bagnolet's clerk key
        load_key(network.key_of(second, "clerk"), b"Montreuil's clerk own secret")
    with pytest.raises(KeyFileError):
        load_key(network.dir_of(second) / "validator.key", b"Montreuil's operator passphrase")


def test_init_refuses_bad_input_with_one_line(tmp_path: Path) -> None:
    three = ["network", "init", "--out", str(tmp_path / "a"), *[
        a for m in MUNIS[:3] for a in ("-m", m)]]
    assert_one_line_error(run_cli(*three), 2, "4 to 64 municipalities")
    bad_siret = ["network", "init", "--out", str(tmp_path / "b"), "-m", "Paris:123",
                 *[a for m in MUNIS for a in ("-m", m)]]
    assert_one_line_error(invoke_cli(*bad_siret), 2, "14 digits")
    twice = ["network", "init", "--out", str(tmp_path / "c"), "-m", MUNIS[0],
             *[a for m in MUNIS for a in ("-m", m)]]
    assert_one_line_error(invoke_cli(*twice), 2, "share a SIRET")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep").write_text("x")
    assert_one_line_error(invoke_cli(*_args(busy)), 2, "not an empty directory")
    assert sorted(p.name for p in busy.iterdir()) == ["keep"]


def test_init_refuses_one_passphrase_for_two_key_holders(runner: CliRunner,
                                                         tmp_path: Path) -> None:
    same = {**_holders(), "PW_MONTREUIL_ADMIN": "Montreuil's operator passphrase"}
    result = runner.invoke(app, _args(tmp_path / "x", "--passphrase-env", "PW"), env=same)
    assert result.exit_code == 2
    assert "PW_MONTREUIL and PW_MONTREUIL_ADMIN hold the same passphrase" in result.output
    across = {**_holders(), "PW_BAGNOLET_CLERK": "Montreuil's clerk own secret"}
    result = runner.invoke(app, _args(tmp_path / "z", "--passphrase-env", "PW"), env=across)
    assert result.exit_code == 2
    assert "PW_MONTREUIL_CLERK and PW_BAGNOLET_CLERK hold the same passphrase" in result.output
    missing = {k: v for k, v in _holders().items() if k != "PW_VINCENNES_CLERK"}
    result = runner.invoke(app, _args(tmp_path / "y", "--passphrase-env", "PW"), env=missing)
    assert result.exit_code == 2 and "PW_VINCENNES_CLERK" in result.output


def test_a_tag_key_path_that_is_not_a_file_is_named_as_such(tmp_path: Path) -> None:
    """A directory given as --tag-key is refused as "not a regular file" (it used to be
    called too large, its directory entry being 4 KiB), a FIFO is refused without reading
    it (it would block), and an oversized file before it is read."""
    directory = tmp_path / "keys"
    directory.mkdir()
    with pytest.raises(CliError, match="not a regular file") as refused:
        load_tag_key(directory)
    assert refused.value.exit_code == 2
    fifo = tmp_path / "fifo.key"
    os.mkfifo(fifo)
    with pytest.raises(CliError, match="not a regular file"):
        load_tag_key(fifo)
    large = tmp_path / "large.key"
    large.write_text("ab" * TAG_KEY_FILE_BYTES_MAX)
    with pytest.raises(CliError, match=f"larger than {TAG_KEY_FILE_BYTES_MAX} bytes"):
        load_tag_key(large)
    missing = tmp_path / "missing.key"
    with pytest.raises(CliError, match="does not exist"):
        load_tag_key(missing)


def test_a_manifest_is_read_bounded_and_its_problems_are_named(network: Network,
                                                               tmp_path: Path) -> None:
    copy = tmp_path / "net"
    copy.mkdir()
    manifest = copy / MANIFEST_FILE
    manifest.write_bytes(b"{" + b" " * MANIFEST_BYTES_MAX + b"}")
    with pytest.raises(CliError, match=f"larger than {MANIFEST_BYTES_MAX} bytes"):
        load_network(copy)
    manifest.write_bytes(b"\xff\xfe not text")
    with pytest.raises(CliError, match="not utf-8 text"):
        load_network(copy)
    manifest.write_text((network.root / MANIFEST_FILE).read_text(encoding="utf-8"),
                        encoding="utf-8")
    assert load_network(copy).municipalities == network.municipalities
