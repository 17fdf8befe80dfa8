"""Multi-node simulations: local processes, network-namespace hosts, deterministic in-process runs."""
