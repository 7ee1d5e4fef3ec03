"""The named scenarios of issue 3, each a function of a seed.

Rules:
- A scenario builds a ``Simulation``, scripts faults at fixed simulated times, and ends
  with a liveness check (every submitted transaction commits at every correct node)
  unless the scenario is about the absence of progress. The checker runs after every
  step throughout, so safety is checked in every scenario.
- Each returns a ``Result`` with the figures the report needs (view changes, heights).
- Times are simulated milliseconds after the start; ``SIM_PARAMS`` uses a 400 ms view
  timeout, checkpoints every 4 heights, a 16-height window and an execution lag of 2.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from consensus.messages import Message, PrePrepare, Status
from consensus.replica import Replica
from ledger.genesis import ConsensusParams
from ledger.records import Vote
from testkit.sim.core import ReplicaFactory, Simulation

LIVENESS_MS = 60_000


@dataclass(frozen=True, slots=True)
class Result:
    """Figures of one run."""

    scenario: str
    seed: int
    steps: int
    heights: int
    view_changes: int
    extra: dict[str, int]


def _result(sim: Simulation, **extra: int) -> Result:
    return Result(sim.scenario, sim.seed, sim.steps, sim.heights(), sim.view_changes(), extra)


def _settled(sim: Simulation, faults_ms: int) -> Result:
    """Run the scenario's faults for ``faults_ms`` of simulated time, then require
    liveness (everything submitted commits within ``LIVENESS_MS``); the run's figures."""
    sim.run(faults_ms)
    sim.run_until_committed(LIVENESS_MS)
    return _result(sim)


def _load(sim: Simulation, batches: int, every_ms: int, size: int, start_ms: int = 0) -> None:
    for i in range(batches):
        sim.at(start_ms + i * every_ms, lambda: sim.submit(size))


def normal(seed: int) -> Result:
    sim = Simulation(seed, scenario="normal")
    _load(sim, 5, 100, 8)
    return _settled(sim, 600)


def primary_crash(seed: int) -> Result:
    """The primary crashes right after proposing the first blocks of a batch."""
    sim = Simulation(seed, scenario="primary_crash")
    sim.submit(20)
    sim.at(4, lambda: sim.crash(0))
    _load(sim, 3, 200, 5, start_ms=100)
    return _settled(sim, 700)


def primary_paused(seed: int) -> Result:
    """The primary stops for 3 s (others change view), then resumes with its old view."""
    sim = Simulation(seed, scenario="primary_paused")
    sim.submit(10)
    sim.at(3, lambda: sim.pause(0))
    _load(sim, 5, 300, 4, start_ms=50)
    sim.at(3_000, lambda: sim.resume(0))
    stale: list[int] = []
    resumed = 3_000 + sim.time

    def observe(index: int, message: Message | None) -> None:
        # Messages the old primary sends after resuming, for views the others have left.
        others = min(n.replica.view for n in sim.nodes if n.index != 0)
        if (index == 0 and sim.time >= resumed
                and isinstance(message, (PrePrepare, Vote, Status)) and message.view < others):
            stale.append(message.view)

    sim.observer = observe
    sim.run(3_000)
    views_at_resume = min(n.replica.view for n in sim.nodes if n.index != 0)
    sim.at(3_100, lambda: sim.submit(8))
    sim.run(3_500)
    sim.run_until_committed(LIVENESS_MS)
    lowest = min(n.replica.view for n in sim.nodes if n.index != 0)
    return _result(sim, stale_messages_after_resume=len(stale),
                   views_at_resume=views_at_resume, lowest_view_at_end=lowest,
                   old_primary_view=sim.nodes[0].replica.view)


def equivocating_primary(seed: int) -> Result:
    """The primary sends two different blocks for each height to two halves."""
    sim = Simulation(seed, scenario="equivocating_primary")
    sim.nodes[0].equivocate = True
    sim.faulty.add(0)
    _load(sim, 4, 150, 6)
    return _settled(sim, 600)


def twinned_backup(seed: int) -> Result:
    """Two instances of validator 1 share its key and both take part (Twins)."""
    sim = Simulation(seed, scenario="twinned_backup", twins=(1,))
    _load(sim, 4, 150, 6)
    sim.at(300, lambda: sim.crash(0))  # force a view change with the twins voting in it
    sim.at(1_300, lambda: sim.restart(0))  # then back to one fault (the twins)
    return _settled(sim, 1_400)


def twinned_primary(seed: int) -> Result:
    """Two instances of the primary share its key: two proposals per height."""
    sim = Simulation(seed, scenario="twinned_primary", twins=(0,))
    sim.nodes[-1].clock_rate = 1.3  # the twin stamps other times: conflicting blocks
    _load(sim, 4, 150, 6)
    return _settled(sim, 600)


def amnesia_restart(seed: int, *, forget: bool = False) -> Result:
    """The primary crashes just after proposing and restarts at once with the same key;
    with working persistence it re-sends the same block, never a conflicting one."""
    name = "amnesia_restart_broken" if forget else "amnesia_restart"
    sim = Simulation(seed, scenario=name)
    sim.nodes[0].forget_persisted = forget
    sim.submit(6)
    sim.at(3, lambda: sim.crash(0))
    sim.at(8, lambda: sim.restart(0))
    sim.at(300, lambda: sim.crash(1))
    sim.at(320, lambda: sim.restart(1))
    _load(sim, 3, 200, 4, start_ms=100)
    return _settled(sim, 800)


def partition_2_2(seed: int) -> Result:
    """Two halves of two: no quorum anywhere, so no commit and no violation; after the
    partition heals, everything commits."""
    sim = Simulation(seed, scenario="partition_2_2")
    sim.set_partition([{0, 1}, {2, 3}])
    _load(sim, 3, 300, 6)
    sim.run(4_000)
    committed_during = sim.heights()
    views_before = sim.view_changes()
    sim.set_partition(None)
    sim.run_until_committed(LIVENESS_MS)
    return _result(sim, committed_during_partition=committed_during,
                   views_during_partition=views_before,
                   views_after_heal=sim.view_changes() - views_before)


def partition_3_1(seed: int) -> Result:
    """The primary is cut off; the other three change view and go on; it catches up."""
    sim = Simulation(seed, scenario="partition_3_1")
    sim.set_partition([{0}, {1, 2, 3}])
    _load(sim, 4, 200, 6)
    sim.run(800)
    majority = [n for n in sim.nodes if n.index != 0]
    sim.run_until_committed(LIVENESS_MS, nodes=majority)
    progress_during = min(n.replica.tip for n in majority)
    sim.set_partition(None)
    sim.submit(4)
    sim.run_until_committed(LIVENESS_MS)
    return _result(sim, heights_during_partition=progress_during)


def lossy_network(seed: int) -> Result:
    """20% loss, 10% duplication, delays of 1 to 80 ms (heavy reordering)."""
    sim = Simulation(seed, scenario="lossy_network", loss=0.2, dup=0.1, delay_ms=(1, 80))
    _load(sim, 10, 250, 8)
    return _settled(sim, 2_500)


def clock_skew(seed: int) -> Result:
    """One replica's clock runs 50% fast (its timers fire early, its times run ahead);
    then the primary's."""
    sim = Simulation(seed, scenario="clock_skew")
    sim.nodes[2].clock_rate = 1.5
    sim.nodes[0].clock_rate = 0.5
    _load(sim, 8, 300, 6)
    return _settled(sim, 2_400)


def n7_two_faulty_primaries(seed: int) -> Result:
    """n = 7 (f = 2): the primaries of views 0 and 1 are both down."""
    sim = Simulation(seed, 7, scenario="n7_two_faulty_primaries")
    sim.crash(0)
    sim.crash(1)
    _load(sim, 4, 200, 6)
    return _settled(sim, 800)


def lagging_state_transfer(seed: int) -> Result:
    """A replica is down while the chain moves past its low watermark; on restart it
    catches up by state transfer (certificates checked) and takes part again."""
    sim = Simulation(seed, scenario="lagging_state_transfer")
    sim.crash(3)
    _load(sim, 30, 40, 8)
    sim.run(1_300)
    others = [n for n in sim.nodes if n.index != 3]
    sim.run_until_committed(LIVENESS_MS, nodes=others)
    low_at_restart = min(n.replica.low for n in others)
    sim.restart(3)
    sim.after(50, lambda: sim.submit(8))
    sim.run_until_committed(LIVENESS_MS)
    return _result(sim, low_at_restart=low_at_restart,
                   lagging_tip=sim.nodes[3].replica.tip)


def validators_change(seed: int) -> Result:
    """Under load, validator 4 is added (5 validators), then validator 0 is removed."""
    sim = Simulation(seed, scenario="validators_change", extra_nodes=1)
    keys = [k.public_key.hex() for k in sim.keys]
    _load(sim, 20, 100, 4)
    sim.at(150, lambda: sim.submit(1, "validators", {"keys": keys[:5]}))
    sim.at(1_200, lambda: sim.submit(1, "validators", {"keys": keys[1:5]}))
    sim.run(2_200)
    sim.run_until_committed(LIVENESS_MS, nodes=[n for n in sim.nodes if n.index != 0])
    added, removed = sim.keys[4].public_key, sim.keys[0].public_key
    chain = sim.nodes[1].delivered
    signed_by_added = [h for h, p in chain.items()
                       if any(s.voter == added for s in p.certificate.signatures)]
    signed_by_removed = [h for h, p in chain.items()
                         if any(s.voter == removed for s in p.certificate.signatures)]
    return _result(sim, first_signed_by_added=min(signed_by_added, default=0),
                   last_signed_by_removed=max(signed_by_removed, default=0),
                   validators_at_tip=sim.nodes[1].replica.set_at(sim.heights() + 1).n,
                   added_tip=sim.nodes[4].replica.tip)


def validator_key_rotation(seed: int) -> Result:
    """Under load, municipality 0 replaces its validator key by governance: validator 4
    (the new key) takes the place of validator 0 (the old key). The old key's replica
    keeps running and ignores the decision: it goes on voting as a validator of the old
    set. The others go on with the new key, and no certificate past the change carries
    the old key."""
    sim = Simulation(seed, scenario="validator_key_rotation", extra_nodes=1)
    sim.nodes[0].executor.follows_governance = False
    sim.faulty.add(0)
    keys = [k.public_key.hex() for k in sim.keys]
    old, new = sim.keys[0].public_key, sim.keys[4].public_key
    _load(sim, 20, 100, 4)
    sim.at(150, lambda: sim.submit(1, "validators", {"keys": keys[1:5]}))
    sim.run(2_200)
    sim.run_until_committed(LIVENESS_MS, nodes=[n for n in sim.nodes if n.index != 0])
    observer = sim.nodes[1]
    rotated_at = next(h for h in range(1, sim.heights() + 2)
                      if old not in observer.replica.set_at(h).keys)
    chain = observer.delivered
    signers = {h: {s.voter for s in p.certificate.signatures} for h, p in chain.items()}
    return _result(sim, rotated_at=rotated_at,
                   signed_by_old_after=sum(1 for h, v in signers.items()
                                           if h >= rotated_at and old in v),
                   signed_by_new_after=sum(1 for h, v in signers.items()
                                           if h >= rotated_at and new in v),
                   validators_at_tip=observer.replica.set_at(sim.heights() + 1).n,
                   new_key_tip=sim.nodes[4].replica.tip)


def forged_messages(seed: int) -> Result:
    """A Byzantine validator adds garbage, bit flips, replays and forged votes."""
    sim = Simulation(seed, scenario="forged_messages")
    sim.nodes[3].forger = True
    sim.faulty.add(3)
    _load(sim, 5, 150, 6)
    return _settled(sim, 800)


def silent_replica(seed: int) -> Result:
    """One validator receives everything and sends nothing."""
    sim = Simulation(seed, scenario="silent_replica")
    sim.nodes[1].silent = True
    sim.faulty.add(1)
    _load(sim, 5, 150, 6)
    return _settled(sim, 800)


def shifting_partitions(seed: int) -> Result:
    """Every 400 ms a different validator (chosen by the seed) is cut off, or none; the
    network heals at the end."""
    sim = Simulation(seed, scenario="shifting_partitions", loss=0.05)
    _load(sim, 20, 150, 6)
    for step in range(8):
        cut = sim.rng.randrange(5)
        groups = None if cut == 4 else [{cut}, set(range(4)) - {cut}]
        sim.at(400 * step, partial(sim.set_partition, groups))
    sim.at(3_200, partial(sim.set_partition, None))
    return _settled(sim, 3_300)


def chaos(seed: int) -> Result:
    """Everything at once, chosen by the seed: loss, duplication, reordering, one
    validator at a time crashing and restarting, pausing, or cut off by a partition;
    n = 4 or 7. The faults heal at 4 s; then everything must commit."""
    rng = random.Random(seed)
    n = rng.choice((4, 4, 7))
    sim = Simulation(seed, n, scenario="chaos", loss=rng.choice((0.0, 0.1, 0.2)),
                     dup=rng.choice((0.0, 0.1)), delay_ms=(1, rng.choice((20, 80))))
    _load(sim, 25, 150, 5)
    f = (n - 1) // 3
    victims = rng.sample(range(n), f)
    for step in range(10):
        at = 400 * step
        victim = victims[step % f]
        action = rng.randrange(4)
        if action == 0:
            sim.at(at, partial(sim.crash, victim))
            sim.at(at + rng.randint(50, 350), partial(sim.restart, victim))
        elif action == 1:
            sim.at(at, partial(sim.pause, victim))
            sim.at(at + rng.randint(50, 350), partial(sim.resume, victim))
        elif action == 2:
            sim.at(at, partial(sim.set_partition, [set(victims), set(range(n)) - set(victims)]))
            sim.at(at + rng.randint(50, 350), partial(sim.set_partition, None))
    return _settled(sim, 4_100)


def rolling_restarts(seed: int) -> Result:
    """Under load, each validator in turn crashes and restarts from its persisted state
    (after checkpoints were taken, so restarts resume from a stable checkpoint)."""
    sim = Simulation(seed, scenario="rolling_restarts", loss=0.05)
    _load(sim, 24, 100, 6)
    for index in range(4):
        sim.at(500 + 450 * index, partial(sim.crash, index))
        sim.at(700 + 450 * index, partial(sim.restart, index))
    return _settled(sim, 2_600)


SCENARIOS: dict[str, Callable[[int], Result]] = {
    "normal": normal,
    "primary_crash": primary_crash,
    "primary_paused": primary_paused,
    "equivocating_primary": equivocating_primary,
    "twinned_backup": twinned_backup,
    "twinned_primary": twinned_primary,
    "amnesia_restart": amnesia_restart,
    "partition_2_2": partition_2_2,
    "partition_3_1": partition_3_1,
    "lossy_network": lossy_network,
    "clock_skew": clock_skew,
    "n7_two_faulty_primaries": n7_two_faulty_primaries,
    "lagging_state_transfer": lagging_state_transfer,
    "validators_change": validators_change,
    "validator_key_rotation": validator_key_rotation,
    "forged_messages": forged_messages,
    "silent_replica": silent_replica,
    "rolling_restarts": rolling_restarts,
    "shifting_partitions": shifting_partitions,
    "chaos": chaos,
}


def isolated_backup_heals(seed: int, factory: ReplicaFactory = Replica) -> Result:
    """A backup is cut off alone under load (3|1) and the link comes back: it must be in
    the others' active view and vote again. Proof: another validator then crashes, and
    the network only goes on if the healed one takes part (q = 3 of the 3 left)."""
    sim = Simulation(seed, scenario="isolated_backup_heals",
                     replica_factory=dict.fromkeys(range(4), factory))
    sim.set_partition([{2}, {0, 1, 3}])
    _load(sim, 6, 200, 6)
    sim.run(3_000)
    sim.set_partition(None)
    sim.submit(4)
    sim.run_until_committed(LIVENESS_MS)
    views = {(n.replica.view, n.replica.view_active) for n in sim.correct_nodes()}
    sim.crash(3)
    survivors = [n for n in sim.nodes if n.index != 3]
    sim.submit(6)
    sim.run_until_committed(LIVENESS_MS, nodes=survivors)
    return _result(sim, views_after_heal=len(views))


def tampering_validator(seed: int, factory: ReplicaFactory = Replica) -> Result:
    """Validator 1 keeps every header it signs or serves but swaps the transactions of
    every body it sends: its pre-prepares (as primary of view 1, after the first primary
    crashes), the bodies it is asked for by hash, and the blocks it serves to replicas
    catching up after a crash (validators 0 and 3). ``factory`` builds the correct
    replicas (a broken one shows the checker catches what the rules prevent)."""
    sim = Simulation(seed, scenario="tampering_validator",
                     replica_factory={0: factory, 2: factory, 3: factory})
    sim.nodes[1].tamperer = True
    sim.faulty.add(1)
    _load(sim, 6, 150, 6)
    sim.at(300, lambda: sim.crash(0))
    sim.at(400, lambda: sim.crash(3))
    sim.at(1_500, lambda: sim.restart(0))
    sim.at(1_600, lambda: sim.restart(3))
    return _settled(sim, 2_000)


def lying_status(seed: int, factory: ReplicaFactory = Replica) -> Result:
    """Validator 2 claims a committed height of a billion in every STATUS: correct nodes may
    ask it once, but their catch-up target only follows certified heights."""
    sim = Simulation(seed, scenario="lying_status",
                     replica_factory={0: factory, 1: factory, 3: factory})
    sim.nodes[2].liar = True
    sim.faulty.add(2)
    _load(sim, 6, 150, 6)
    sim.run(1_500)
    sim.run_until_committed(LIVENESS_MS)
    top = max(n.replica.tip for n in sim.correct_nodes())
    targets = max(n.replica.transfer.target for n in sim.correct_nodes())
    return _result(sim, highest_target_over_tip=max(0, targets - top))


def set_change_with_crashes(seed: int) -> Result:
    """Two validator-set decisions close together (validator 4 added, then validator 0
    removed: the last decided before a boundary wins) while validators crash and restart
    around them, between execution and the replica hearing of it. Every correct node must
    end with the same history as the reference execution (checked on every delivery)."""
    sim = Simulation(seed, scenario="set_change_with_crashes", extra_nodes=1)
    keys = [k.public_key.hex() for k in sim.keys]
    _load(sim, 16, 100, 4)
    sim.at(150, lambda: sim.submit(1, "validators", {"keys": keys[:5]}))
    sim.at(170, lambda: sim.submit(1, "validators", {"keys": keys[1:5]}))
    for index, at in ((2, 190), (3, 260), (1, 330)):
        sim.at(at, partial(sim.crash, index))
        sim.at(at + 120, partial(sim.restart, index))
    sim.run(2_200)
    sim.run_until_committed(LIVENESS_MS, nodes=[n for n in sim.nodes if n.index != 0])
    return _result(sim, validators_at_tip=sim.nodes[1].replica.set_at(sim.heights() + 1).n)


REAL_PARAMS = ConsensusParams(checkpoint_interval=16, watermark_window=64,
                              block_txs_max=1_000, block_bytes_max=2 * 1024 * 1024,
                              view_timeout_ms=2_000, execution_lag=4)
"""The genesis defaults of a real network, for the scenario with real sizes."""


def real_sizes_view_change(seed: int) -> Result:
    """View change under load with real sizes: K = 16, L = 64, D = 4, blocks of up to
    1,000 transactions; the primary crashes with several full blocks in flight. Every
    message must stay within its documented bound and the real decoder limit."""
    sim = Simulation(seed, scenario="real_sizes_view_change", params=REAL_PARAMS)
    sim.submit(3_000, payload={"note": "x" * 200})
    sim.at(30, lambda: sim.crash(0))
    sim.at(60, lambda: sim.submit(2_000, payload={"note": "y" * 200}))
    sim.run(1_000)
    sim.run_until_committed(LIVENESS_MS * 2, nodes=[n for n in sim.nodes if n.index != 0])
    return _result(sim)


SCENARIOS.update({
    "set_change_with_crashes": set_change_with_crashes,
    "real_sizes_view_change": real_sizes_view_change,
    "isolated_backup_heals": isolated_backup_heals,
    "tampering_validator": tampering_validator,
    "lying_status": lying_status,
})
