"""One engine node: the Node, its registry of actors, routing, ownership and adoption, the control channel, the catalog
of definitions, queries, feeds, children and idempotency."""
