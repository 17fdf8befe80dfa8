"""A Byzantine-fault-tolerant consensus node: hashgraph over QUIC, signed actions, federated origins."""

__version__ = "0.1.0"
