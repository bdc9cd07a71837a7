"""The local testbed: a real control plane and the real KServe without a container engine."""
