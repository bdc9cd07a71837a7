"""The platform on a cluster: installing it, the run's one cluster, deploying workloads, reaching them."""
