"""The node daemon: phase machine, service supervisor, Redis truth bridge, heartbeats, healer, sentinel.

How a layer plugs in (no change to the runtime needed):

1. Write a service: a class with `name`, `kind` ("blocking" | "async" | "federated") and
   `async def run(self, *, task_status=trio.TASK_STATUS_IGNORED)` that calls
   `task_status.started()` once ready, then runs until cancelled.  Optional `healthy() -> bool`:
   while False, its heartbeat pauses and the healer reports `heartbeat_miss`.
2. Add `node/<layer>/plugin.py` with `def register(registry: ServiceRegistry) -> None`, calling
   `registry.add("consensus", "blocking", lambda ctx: ConsensusService(ctx))`.  The daemon imports
   every `node.<pkg>.plugin` at start.  The factory receives a `NodeContext`: settings, home, key,
   `phases`, `redis` (bridge), `truth`, `status`, `mesh_ready`, and `extras` (a dict for sharing
   objects between layers, e.g. `ctx.extras["storage"]`).
3. Drive the phase machine from the service: `ctx.phases.fire(Trigger.CA_ISSUED)` (then
   `CONSENSUS_JOINED`, `FEDERATION_UP`, and back with `CONSENSUS_LOST`, `FEDERATION_LOST`,
   `CERT_REVOKED`); an illegal transition raises `PhaseError`.  Every change is published to
   `truth:system:startup_status`; reaching `consensus` sets `ctx.mesh_ready`, which releases the
   federated components.
4. Order and kind at start come from the truth's `startup.components`; a registered service the
   truth does not list starts after the listed ones, with its registered kind.
"""
