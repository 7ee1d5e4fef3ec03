"""Node configuration: one frozen object, loaded once from a TOML file.

Rules:
- The file is read once at start-up; nothing reads configuration from anywhere else
  (no environment lookups scattered through the code, no globals). The one secret, the
  key passphrase, is not in the file: the file names the environment variable that
  holds it (``passphrase_env``).
- Relative paths in the file are relative to the directory of the file, so a network
  directory can be moved or mounted into a container as a whole.
- Every field is checked; a ``ConfigError`` names the file and the field, and says what
  a valid value looks like.
- Every limit has a default and a range; units are last in names (``..._ms``,
  ``..._bytes_max``).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import tomli_w

from ledger.address import split_host_port as split_host_port
from ledger.files import read_text_bounded
from node.errors import ConfigError

CONFIG_FILE_BYTES_MAX = 1024 * 1024
PEERS_MAX = 256
LOG_LEVELS = ("debug", "info", "warning", "error")
_KEY_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on everything a peer or a client can make the node hold."""

    frame_bytes_max: int = 16 * 1024 * 1024
    """Largest peer frame (a pre-prepare carries a whole block; state transfer several)."""
    send_queue_max: int = 4096
    """Frames queued for one peer; beyond it the oldest frame is dropped (ADR 0009)."""
    send_queue_bytes_max: int = 64 * 1024 * 1024
    """Bytes queued for one peer; beyond it the oldest frames are dropped."""
    inbox_max: int = 4096
    """Events waiting for the replica task; a full inbox slows the peers down (TCP)."""
    inbox_bytes_max: int = 64 * 1024 * 1024
    """Bytes of peer messages waiting for the replica task, all peers together."""
    peer_inbox_bytes_max: int = 32 * 1024 * 1024
    """Bytes of one peer's messages waiting for the replica task; a peer over its share
    waits (TCP slows it down) while the others go on."""
    handshakes_pending_max: int = 64
    """Unauthenticated inbound connections at a time, all addresses together; when full,
    the oldest one of the address holding the most is closed to make room."""
    handshakes_pending_per_address_max: int = 4
    """Unauthenticated inbound connections from one source address; more are closed."""
    handshake_timeout_ms: int = 3_000
    """Time an inbound connection has to prove its key."""
    reconnect_backoff_ms_min: int = 50
    """First delay before redialling a peer; doubles after each failure."""
    reconnect_backoff_ms_max: int = 2_000
    """Cap of the redial delay."""
    mempool_txs_max: int = 50_000
    """Pending transactions held by the mempool."""
    mempool_bytes_max: int = 64 * 1024 * 1024
    """Encoded bytes of the pending transactions."""
    client_backlog_ms: int = 3_000
    """Pending transactions a node holds before it answers clients 429 ``busy``, in
    milliseconds of its measured commit rate (the latency a new submission would queue)."""
    client_backlog_txs_min: int = 2_000
    """The same bound's floor, in transactions (one full block at the default
    ``block_txs_max``): what a node admits when little or nothing was committed lately."""
    verified_cache_max: int = 100_000
    """Transaction signatures remembered as verified (LRU): twice the mempool, so a
    pending transaction is verified once, at admission (each entry costs about 250 bytes
    of memory)."""
    api_body_bytes_max: int = 8 * 1024 * 1024
    """Largest HTTP request body; a larger one is refused before it is read."""
    api_batch_txs_max: int = 2_000
    """Transactions in one POST /v1/transactions."""
    api_wait_ms_max: int = 60_000
    """Longest ``timeout_ms`` a client may ask for when waiting for a commit."""
    api_page_max: int = 500
    """Most records one page of GET /v1/records returns."""
    api_client_requests_per_s: int = 100
    """HTTP requests per second from one client address (sustained); 429 beyond."""
    api_client_requests_burst: int = 200
    """HTTP requests one client address may make at once before the rate applies."""
    api_signer_txs_per_s: int = 1_000
    """Transactions per second one signer may submit to this node (sustained)."""
    api_signer_txs_burst: int = 4_000
    """Transactions one signer may submit at once before the rate applies."""
    rate_limit_tracked_max: int = 10_000
    """Client addresses and signers whose rate is tracked (least recently seen out)."""
    state_transfer_blocks_max: int = 64
    """Blocks sent in one state-transfer answer."""

    def check(self, where: str) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{where}: limits.{f.name} must be a positive integer")
        if self.frame_bytes_max < 64 * 1024:
            raise ConfigError(f"{where}: limits.frame_bytes_max must be at least 65536")
        for name in ("inbox_bytes_max", "peer_inbox_bytes_max"):
            if getattr(self, name) < self.frame_bytes_max:
                raise ConfigError(f"{where}: limits.{name} must be at least "
                                  "limits.frame_bytes_max (one frame must fit)")
        if self.handshakes_pending_per_address_max > self.handshakes_pending_max:
            raise ConfigError(f"{where}: limits.handshakes_pending_per_address_max must "
                              "not exceed limits.handshakes_pending_max")
        if self.reconnect_backoff_ms_min > self.reconnect_backoff_ms_max:
            raise ConfigError(
                f"{where}: limits.reconnect_backoff_ms_min must not exceed "
                "limits.reconnect_backoff_ms_max"
            )


@dataclass(frozen=True, slots=True)
class PeerConfig:
    """Another validator: its public key and where to reach its peer port."""

    validator_key: bytes
    """Ed25519 public key (32 bytes; hex in the file)."""
    address: str
    """``host:port`` of its peer listener."""

    @property
    def host(self) -> str:
        return split_host_port(self.address)[0]

    @property
    def port(self) -> int:
        return split_host_port(self.address)[1]


@dataclass(frozen=True, slots=True)
class Open311Config:
    """The town's Open311 intake (``[open311]``; node/open311.py): optional."""

    siret: str
    """SIRET of the municipality whose reports this node files."""
    intake_key_file: Path
    """Encrypted key file of the town's intake member (role ``intake``), same passphrase
    as the validator key."""
    api_key_sha256: str
    """SHA-256 (hex) of the API key the town's front end sends; the key itself is not
    kept in the file."""


def _open311(raw: Any, base_dir: Path, where: str) -> Open311Config:
    ow = f"{where}: open311"
    if not isinstance(raw, dict):
        raise ConfigError(f"{ow} must be a table with siret, intake_key_file, api_key_sha256")
    unknown = sorted(set(raw) - {"siret", "intake_key_file", "api_key_sha256"})
    if unknown:
        raise ConfigError(f"{ow}: unknown field(s) {', '.join(unknown)}")
    siret = _require(raw, "siret", str, ow)
    if not re.fullmatch(r"[0-9]{14}", siret):
        raise ConfigError(f"{ow}.siret must be the 14-digit SIRET of the municipality")
    digest = _require(raw, "api_key_sha256", str, ow)
    if not _KEY_RE.fullmatch(digest):
        raise ConfigError(f"{ow}.api_key_sha256 must be 64 lowercase hex digits (the SHA-256 "
                          "of the front end's API key, e.g. printf %s KEY | sha256sum)")
    key_file = Path(_require(raw, "intake_key_file", str, ow))
    return Open311Config(siret, key_file if key_file.is_absolute() else base_dir / key_file,
                         digest)


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Everything a validator node needs to start."""

    data_dir: Path
    """Directory of the chain store (LevelDB); created if missing."""
    key_file: Path
    """Encrypted key file of this validator (``tabellion keys new``)."""
    passphrase_env: str
    """Name of the environment variable holding the key file's passphrase."""
    genesis_file: Path
    """The network's genesis file."""
    listen_peer: str
    """``host:port`` the peer transport listens on."""
    listen_api: str
    """``host:port`` the HTTP API listens on."""
    peers: tuple[PeerConfig, ...] = ()
    """The other validators (this node's own key may be listed too; it is skipped)."""
    limits: Limits = field(default_factory=Limits)
    """Bounds; see ``Limits``."""
    log_level: str = "info"
    """One of debug, info, warning, error."""
    source: Path | None = None
    """The file this configuration was read from (for messages), if any."""
    open311: Open311Config | None = None
    """The town's Open311 intake, if this node files reports for it."""


def _require(obj: dict[str, Any], name: str, kind: type, where: str) -> Any:
    if name not in obj:
        raise ConfigError(f"{where}: the field {name!r} is missing")
    value = obj[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{where}: the field {name!r} must be a {kind.__name__}")
    return value


def _address(obj: dict[str, Any], name: str, where: str) -> str:
    value = _require(obj, name, str, where)
    try:
        split_host_port(value)
    except ValueError as exc:
        raise ConfigError(
            f"{where}: {name} = {value!r} must be host:port, e.g. \"127.0.0.1:7001\""
        ) from exc
    return str(value)


def config_from_dict(obj: dict[str, Any], base_dir: Path, where: str) -> NodeConfig:
    """Validate a parsed configuration; ``where`` names its source in messages."""
    known = {f.name for f in fields(NodeConfig)} - {"source"}
    unknown = sorted(set(obj) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}; known: "
                          f"{', '.join(sorted(known))}")

    def path(name: str) -> Path:
        value = _require(obj, name, str, where)
        if not value:
            raise ConfigError(f"{where}: the field {name!r} must not be empty")
        p = Path(value)
        return p if p.is_absolute() else base_dir / p

    passphrase_env = _require(obj, "passphrase_env", str, where)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", passphrase_env):
        raise ConfigError(f"{where}: passphrase_env must be an environment variable name")
    peers: list[PeerConfig] = []
    raw_peers = obj.get("peers", [])
    if not isinstance(raw_peers, list) or len(raw_peers) > PEERS_MAX:
        raise ConfigError(f"{where}: peers must be a list of at most {PEERS_MAX} tables")
    for i, raw in enumerate(raw_peers):
        pw = f"{where}: peers[{i}]"
        if not isinstance(raw, dict):
            raise ConfigError(f"{pw} must be a table with validator_key and address")
        key = _require(raw, "validator_key", str, pw)
        if not _KEY_RE.fullmatch(key):
            raise ConfigError(f"{pw}.validator_key must be 64 lowercase hex digits")
        peers.append(PeerConfig(bytes.fromhex(key), _address(raw, "address", pw)))
    if len({p.validator_key for p in peers}) != len(peers):
        raise ConfigError(f"{where}: a validator key is listed twice in peers")
    raw_limits = obj.get("limits", {})
    if not isinstance(raw_limits, dict):
        raise ConfigError(f"{where}: limits must be a table")
    limit_names = {f.name for f in fields(Limits)}
    bad = sorted(set(raw_limits) - limit_names)
    if bad:
        raise ConfigError(f"{where}: unknown limit(s) {', '.join(bad)}; known: "
                          f"{', '.join(sorted(limit_names))}")
    limits = Limits(**raw_limits)
    limits.check(where)
    log_level = obj.get("log_level", "info")
    if log_level not in LOG_LEVELS:
        raise ConfigError(f"{where}: log_level must be one of {', '.join(LOG_LEVELS)}")
    return NodeConfig(
        data_dir=path("data_dir"),
        key_file=path("key_file"),
        passphrase_env=passphrase_env,
        genesis_file=path("genesis_file"),
        listen_peer=_address(obj, "listen_peer", where),
        listen_api=_address(obj, "listen_api", where),
        peers=tuple(peers),
        limits=limits,
        log_level=log_level,
        open311=None if "open311" not in obj else _open311(obj["open311"], base_dir, where),
    )


def load_config(path: Path | str) -> NodeConfig:
    """Read and validate a node configuration file."""
    path = Path(path)
    text = read_text_bounded(path, CONFIG_FILE_BYTES_MAX, "configuration file", ConfigError)
    try:
        obj = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    return replace(config_from_dict(obj, path.resolve().parent, str(path)), source=path)


def _relative(p: Path, base: Path) -> str:
    try:
        return str(p.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(p)


def config_to_dict(cfg: NodeConfig, base_dir: Path) -> dict[str, Any]:
    """The TOML document for ``cfg``; paths under ``base_dir`` are written relative."""
    defaults = Limits()
    limits = {
        f.name: getattr(cfg.limits, f.name)
        for f in fields(Limits)
        if getattr(cfg.limits, f.name) != getattr(defaults, f.name)
    }
    doc: dict[str, Any] = {
        "data_dir": _relative(cfg.data_dir, base_dir),
        "key_file": _relative(cfg.key_file, base_dir),
        "passphrase_env": cfg.passphrase_env,
        "genesis_file": _relative(cfg.genesis_file, base_dir),
        "listen_peer": cfg.listen_peer,
        "listen_api": cfg.listen_api,
        "log_level": cfg.log_level,
        "peers": [{"validator_key": p.validator_key.hex(), "address": p.address}
                  for p in cfg.peers],
    }
    if limits:
        doc["limits"] = limits
    if cfg.open311 is not None:
        doc["open311"] = {"siret": cfg.open311.siret,
                          "intake_key_file": _relative(cfg.open311.intake_key_file, base_dir),
                          "api_key_sha256": cfg.open311.api_key_sha256}
    return doc


def write_config(path: Path | str, cfg: NodeConfig) -> None:
    """Write ``cfg`` as TOML; ``load_config(path)`` gives back an equal configuration."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps(config_to_dict(cfg, path.resolve().parent)))
