"""Federation across origins: DNS resolution and responder, CA pins, cross-origin requests and proofs."""
