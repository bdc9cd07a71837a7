"""Throughput and peak memory of the static layer over generated manifest documents.

Generates N documents by renaming copies of the manifests under test (InferenceServices,
Deployments, Services, HTTPRoutes, ConfigMaps), then times, in a fresh interpreter each run,
loading them and judging every rule, schema validation included.

    python benchmarks/static_throughput.py --documents 1000 --runs 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from serving_conformance.base.data import DEFAULT_MANIFESTS

REPO = Path(__file__).resolve().parent.parent

_MEASURE = """
import json, resource, sys, time
from pathlib import Path
start = time.perf_counter()
from serving_conformance.manifests.load import load_manifests
from serving_conformance.manifests.platform_config import find_config
from serving_conformance.base.settings import Expectations
from serving_conformance.rules.findings import RuleContext, CannotCheck
from serving_conformance.behaviours import static_rules
imported = time.perf_counter()
manifests = load_manifests(Path(sys.argv[1]))
loaded = time.perf_counter()
context = RuleContext(manifests, Expectations("qwen2.5-0.5b", "0.23.0", "0.19.0", "1.34.3", 1), find_config(manifests))
judged = failed = 0
for rule in static_rules():
    for item in rule.select(context):
        try:
            failed += bool(rule.check(item, context))
        except CannotCheck:
            pass
        judged += 1
done = time.perf_counter()
print(json.dumps({
    "documents": len(manifests.resources), "judgements": judged, "failed": failed,
    "import_s": imported - start, "load_s": loaded - imported, "judge_s": done - loaded,
    "total_s": done - start, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def generate(count: int, destination: Path) -> None:
    sources = []
    for path in sorted((DEFAULT_MANIFESTS).rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document.get("kind") not in (None, "Kustomization"):
                sources.append(document)
    written = 0
    copy = 0
    while written < count:
        documents = []
        for source in sources:
            if written == count:
                break
            document = json.loads(json.dumps(source))
            document["metadata"]["name"] = f"{document['metadata']['name']}-{copy}"
            for rule in document.get("spec", {}).get("rules", []):  # keep each split pointing at its copies
                for backend in rule.get("backendRefs", []):
                    backend["name"] = backend["name"].replace("-predictor", f"-{copy}-predictor")
            documents.append(document)
            written += 1
        (destination / f"copy-{copy:04d}.yaml").write_text(yaml.safe_dump_all(documents, sort_keys=False))
        copy += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        generate(args.documents, Path(directory))
        runs = []
        for _ in range(args.runs):
            output = subprocess.run(
                [sys.executable, "-c", _MEASURE, directory], check=True, capture_output=True, text=True
            ).stdout
            runs.append(json.loads(output))
    for run in runs:
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in run.items()}))
    median = statistics.median(r["total_s"] for r in runs)
    judge = statistics.median(r["load_s"] + r["judge_s"] for r in runs)
    print(
        f"{runs[0]['documents']} documents: median {median:.2f} s per run in a fresh interpreter "
        f"({judge:.2f} s load + judge, {runs[0]['documents'] / judge:.0f} documents/s), "
        f"peak RSS {max(r['peak_rss_mib'] for r in runs):.0f} MiB"
    )


if __name__ == "__main__":
    main()
