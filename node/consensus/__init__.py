"""Hashgraph consensus: signed gossip events, virtual voting, ordered blocks (sans-IO)."""
