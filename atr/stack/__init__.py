"""The distributed stack on loopback: PostgreSQL, the object store, replicas behind a load
balancer (atr stack)."""
