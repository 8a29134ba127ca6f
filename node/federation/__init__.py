"""Federation on the node: manifests, pinned peers, grants to aggregates, revocation refresh."""
