"""The real vLLM engine on a CPU-only machine: install, a tiny local model, a launcher, arg checks.

Everything heavy (the venv, the model) lives in the cache, never in the repository. Code that
needs torch or vLLM runs inside the engine's venv through a subprocess; this package itself
imports only the standard library.
"""
