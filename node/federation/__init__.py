"""Federation across origins: DNS resolution and responder, CA pins, cross-origin requests and proofs.

Modules, in the order a request meets them:

- `records`, `zone`, `responder`: what an origin publishes in DNS (SRV/TLSA/TXT at `_node._udp.O`)
  and the node's own authoritative responder (`--dns H:P`), fed from the chain's state (`wiring`).
- `resolver`, `directory`, `pinning`: finding another origin through DNS (static map as fallback,
  TTL cache), trusting its CA key only by a configured pin, and dialling its nodes with failover.
- `chain_actions`: the deterministic records both chains execute (`/federation/request`,
  `/federation/incoming`, `/federation/response`, `/federation/timeout`, `/federation/update`,
  `/federation/origin`, `/federation/endpoint`); its docstring tells the whole flow.
- `proofs`, `messages`: block proofs (a block with a supermajority of its origin's signatures) and
  the messages carried between origins (request, response, update).
- `service` (with `carrier` on the source side and `answerer` on the target side): the runtime
  service registered by `plugin` (kind "federated"), wiring all of it to the consensus engine.
- `tracker`: an in-memory, sans-IO request tracker; the running node keeps the same state on the
  chain instead (see `chain_actions`), so every node agrees on it after a restart.

Settings (node/config.py): `dns`, `federation_listen`, `federation_origins`,
`federation_nameservers`, `federation_pins` (ORIGIN=SHA256HEX), `federation_trust_dns`,
`federation_timeout`; `node testnet --origins M` writes them for a local network.
"""
