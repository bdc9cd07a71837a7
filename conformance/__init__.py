"""The conformance tests users run: one module per behaviour (static/, engine/, cluster/)."""
