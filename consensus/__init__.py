"""PBFT consensus as a sans-IO state machine: ``step(event) -> effects``.

Rules: no asyncio, sockets, plyvel, wall clock or randomness here; time arrives as an event
argument; persistence and sending leave as effects. Never imports ``contracts`` or ``node``.

Modules (ADR 0008 gives the protocol and its safety argument):
- ``consensus.replica``: ``Replica(key=, genesis=, executor=, persisted=)`` and
  ``Replica.step(event) -> list[Effect]`` (validator-set changes follow
  ``ledger.validator_history``).
- ``consensus.events``: the events (``Start``, ``MessageReceived``,
  ``TransactionsAvailable``, ``TimerFired``, ``StateTransferData``, ``BlockExecuted``) and
  effects (``Send``, ``Broadcast``, ``Persist``, ``SetTimer``, ``CancelTimer``,
  ``Deliver``, ``RequestStateTransfer``, ``ServeBlocks``, ``DropTransactions``).
- ``consensus.executor``: the ``Executor`` protocol the node implements.
- ``consensus.messages``: signed messages, ``encode_message``/``decode_message``, and
  ``BlocksResponse`` for answering ``ServeBlocks``.
- ``consensus.persist``: ``PersistedState`` (what a restart hands back).
- ``consensus.viewchange``: ``compute_o``, the NEW-VIEW re-proposals.
"""
