"""Reading a file in a container by exec: the kubelet's status decides, so a command that fails
(no `cat` in the image, no such file) is an error that says so, never the digest of nothing."""

import hashlib

import pytest

from serving_conformance.base.features import Feature
from serving_conformance.cluster.base import Cluster
from serving_conformance.platform import files
from serving_conformance.platform.files import PodFileError, PodFiles, exec_status

SUCCESS = "{'metadata': {}, 'status': 'Success'}"
EXIT_1 = ("{'metadata': {}, 'status': 'Failure', 'message': 'command terminated with non-zero exit code', "
          "'reason': 'NonZeroExitCode', 'details': {'causes': [{'reason': 'ExitCode', 'message': '1'}]}}")
NOT_FOUND = ("{'metadata': {}, 'status': 'Failure', 'message': 'exec: \"cat\": executable file not found in $PATH', "
             "'reason': 'InternalError'}")


def test_the_status_of_an_exec_is_read_from_its_error_channel():
    assert exec_status(SUCCESS) == (True, "")
    assert exec_status(EXIT_1) == (False, "exit code 1")
    assert exec_status(NOT_FOUND) == (False, 'exec: "cat": executable file not found in $PATH')
    assert exec_status("")[0] is False and exec_status("[unclosed")[0] is False


class FakeResponse:
    def __init__(self, out, err, status):
        self.channels = {"out": out, "err": err, "status": status}
        self.closed = False

    def run_forever(self, timeout):
        pass

    def read_stdout(self):
        return self.channels["out"]

    def read_stderr(self):
        return self.channels["err"]

    def read_channel(self, channel):
        assert channel == files.ERROR_CHANNEL
        return self.channels["status"]

    def close(self):
        self.closed = True


@pytest.fixture
def pod_files(monkeypatch):
    responses = []

    def fake_stream(*args, **kwargs):
        assert kwargs["command"][0] == "cat" and kwargs["_preload_content"] is False
        return responses.pop(0)

    monkeypatch.setattr(files, "stream", fake_stream)
    monkeypatch.setattr(files.k8s_client, "CoreV1Api", lambda api_client: type("Core", (), {"connect_get_namespaced_pod_exec": None})())

    class Kube:
        api_client = None

    cluster = Cluster("kind", "c", "kubeconfig", None, True, features={Feature.KUBELET.value})
    return PodFiles(Kube(), cluster, 5), responses


def test_a_file_read_by_exec_gives_its_digest(pod_files):
    reader, responses = pod_files
    responses.append(FakeResponse('{"a": 1}\n', "", SUCCESS))
    assert reader.sha256("ns", "pod", "kserve-container", "/mnt/models/config.json") == hashlib.sha256(b'{"a": 1}\n').hexdigest()


@pytest.mark.parametrize(("err", "status", "message"), [
    ("cat: can't open '/mnt/models/config.json': No such file or directory", EXIT_1,
     r"failed \(exit code 1\): cat: can't open"),
    ("", NOT_FOUND, r'failed \(exec: "cat": executable file not found'),
])
def test_a_failed_read_is_an_error_that_says_why(pod_files, err, status, message):
    reader, responses = pod_files
    response = FakeResponse("", err, status)
    responses.append(response)
    with pytest.raises(PodFileError, match=r"`cat /mnt/models/config.json` in container kserve-container of pod ns/pod " + message):
        reader.sha256("ns", "pod", "kserve-container", "/mnt/models/config.json")
    assert response.closed
