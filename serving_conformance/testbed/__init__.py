"""The local testbed: a real Kubernetes control plane (kwokctl, binary runtime) and KServe's manager."""
