"""Dynamic membership: joins, leaves and evictions of proven forkers, decided on the chain.

`chain_actions` registers the records (`/membership/join`, `/membership/remove`,
`/membership/evict`, and `/membership/tick`, a no-op that keeps an idle origin's rounds moving
until a change is in force); `handlers` checks them deterministically and keeps the peer-set history in
chain state (`state`); `follower` applies each committed change to the running hashgraph from
round R + 6 and turns locally seen fork evidence into eviction records; `plugin` runs the follower
as a daemon service and keeps the transport's accepted peers and the gossip peers in step; `joined`
is the history a joining node keeps in its home (written by `node join`, scheduled by the engine
before any event is inserted).
"""
