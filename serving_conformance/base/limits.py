"""Every bound the suite puts on what it reads and writes, in one place (waits are in timeouts.py).

Input under test is untrusted: a few hundred bytes of YAML can expand to gigabytes, nest deep
enough to crash a C parser, or point a directory walk at itself. Each bound below turns such input
into one clear problem instead of a hang, a crash or megabytes of failure text. The values leave
ample room for real manifests: KServe's largest CRD (LLMInferenceService, 2.2 MB) has 82,538
nodes, nested 34 deep, and no alias.
"""

from __future__ import annotations

# --- reading manifests ----------------------------------------------------------------------------

# One manifest file, in bytes (etcd stores objects of at most 1.5 MiB; a file may hold many).
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
# All manifest files of a run together, in bytes, and how many files a walk may read.
MAX_TOTAL_MANIFEST_BYTES = 256 * 1024 * 1024
MAX_MANIFEST_FILES = 10_000
# Directory levels below a manifests root (the walk never recurses in Python).
MAX_WALK_DEPTH = 64

# kustomize's address space while it renders (measured: 210 MB resident for a 72,000-line release
# bundle; KServe's config/overlays/all 400 MB resident, and Go's runtime reserves address space
# beyond that: it ran out of memory under 1 GiB, rendered under 2); past it, kustomize fails and
# says so instead of growing until the kernel ends it.
MAX_KUSTOMIZE_BYTES = 4 * 1024 * 1024 * 1024

# --- YAML ------------------------------------------------------------------------------------------

# Nesting of collections in a document, aliases followed: the deepest real object is ~34.
MAX_YAML_DEPTH = 100
# Alias uses (`*name`) in one file.
MAX_YAML_ALIASES = 1_000
# Nodes of one file once every alias is expanded (what any walk over the data will visit).
MAX_YAML_NODES = 1_000_000

# --- answers the suite reads ------------------------------------------------------------------------

# One HTTP answer of a server under test (after decompression).
MAX_HTTP_RESPONSE_BYTES = 16 * 1024 * 1024

# --- text the suite writes -------------------------------------------------------------------------

# One field of a finding (found, effect, fix), or any message embedding object contents.
MAX_FINDING_CHARS = 1_000
# Findings shown in one failure; the rest are counted.
MAX_FINDINGS_SHOWN = 20
# A name shown in a test id.
MAX_IDENT_CHARS = 120
# A value's repr inside a message (reprlib-style: bounded in time as well as length).
MAX_REPR_CHARS = 200
