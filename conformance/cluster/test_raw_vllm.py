"""The raw-vLLM control is available, serves the model, names the same engine, and enforces its API key.

The raw Deployment runs vLLM with no KServe in between; its key comes from a Secret (created by
the suite when the manifests do not carry one, never printed). vLLM answers 401 on /v1/* without
the key or with a wrong one, and 200 with it.
"""

import pytest

from serving_conformance import behaviours as B
from serving_conformance.checks import assert_api_key_enforced, assert_engine_version, assert_serves_model, chat
from serving_conformance.manifests.design import API_KEY_WORKLOADS, RAW_VLLM
from serving_conformance.manifests.workloads import as_list, as_mapping, served_name_of


def raw_endpoint(workload, deployer, endpoints, conformance_settings, with_key=True):
    namespace = deployer.namespace_of(workload.resource)
    deployer.deploy(workload.resource)
    deployer.available_deployment(workload.resource.name, conformance_settings.timeouts.deployment_rollout, namespace)
    services = deployer.services_selecting(workload.resource)
    assert services, f"no Service in the manifests selects {workload.resource.ident}"
    port = as_mapping(as_list(services[0].spec.get("ports"))[0]).get("port")
    endpoint = endpoints.service(namespace, services[0].name, port)
    key_ref = next(
        (as_mapping(as_mapping(e.get("valueFrom")).get("secretKeyRef")) for e in as_list(workload.serving_container.body.get("env"))
         if as_mapping(e).get("name") == "VLLM_API_KEY"), None,
    )
    key = deployer.secret_value(key_ref["name"], key_ref["key"], namespace) if key_ref else None
    return endpoint.with_key(key if with_key else None), key


@pytest.mark.behaviour(B.RAW_VLLM)
@pytest.mark.workloads(RAW_VLLM)
def test_raw_vllm_serves_the_model_with_the_same_engine(workload, deployer, endpoints, conformance_settings, observe):
    endpoint, _ = raw_endpoint(workload, deployer, endpoints, conformance_settings)
    assert_serves_model(endpoint, conformance_settings.expect.served_name_for(workload.resource))
    response = chat(endpoint, served_name_of(workload), max_tokens=16)
    observe(f"vllm.{workload.resource.ident}", response.get("system_fingerprint"))
    assert_engine_version(response, conformance_settings.expect.engine_version_for(workload.resource), f"{workload.resource.ident} (raw vLLM)")


@pytest.mark.behaviour(B.API_KEY)
@pytest.mark.workloads(API_KEY_WORKLOADS)
def test_raw_vllm_requires_its_api_key(workload, deployer, endpoints, conformance_settings):
    endpoint, key = raw_endpoint(workload, deployer, endpoints, conformance_settings, with_key=False)
    assert key, f"{workload.resource.ident} takes VLLM_API_KEY from no Secret"
    assert_api_key_enforced(endpoint, key)
