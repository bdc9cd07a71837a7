"""serving-conformance: prove an LLM serving layer on Kubernetes does what its design says."""

__version__ = "0.1.0"
