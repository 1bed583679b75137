"""Real Redis topologies (Cluster, Sentinel) on loopback, for tests and benchmarks."""
