"""Cluster providers: kind, an existing cluster, the local testbed (local/), and which one a run uses."""
