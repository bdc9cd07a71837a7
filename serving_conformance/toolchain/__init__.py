"""Building the binaries the suite runs from published sources (Go modules), cached by version."""
