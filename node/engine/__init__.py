"""The Trio engine that ties the sans-IO cores to the network and the disk: gossip over QUIC,
block application to storage, submitted transactions."""
