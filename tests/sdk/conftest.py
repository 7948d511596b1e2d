"""Fixtures of the SDK suite: upstream's Python SDK (k8s-agent-sandbox, pinned in requirements.txt,
unchanged) against the local cluster through our router.

The e2e test `sdk` (tests/e2e/tests/sdk.rs) runs this suite with pytest after it has started the
controller and the router (host processes), deployed the router into the cluster as well
(deploy/local-cluster/router, for the SDK's default port-forward connection) and made a namespace
with the python-runtime template of deploy/local-cluster and a warm pool of it. It passes:

  SDK_ROUTER_URL  the router, e.g. http://127.0.0.1:41234
  SDK_NAMESPACE   the namespace the template and the pool are in
  SDK_WARM_POOL   the warm pool's name
  SDK_RUNC_POOL   a warm pool of the same template under runc (the SDK's pod tunnel needs it)
  KUBECONFIG      the cluster (the SDK's own Kubernetes client and kubectl read it)
"""

import os
import time

import pytest
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from k8s_agent_sandbox import SandboxClient
from k8s_agent_sandbox.models import SandboxDirectConnectionConfig

# How long a sandbox may take to appear or go away on the real node (gVisor pods, a loaded 2-core
# machine); every wait below polls with this bound.
WAIT_SECONDS = 120


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.exit(f"{name} is not set: run this suite through `cargo xtask test` (tests/e2e/tests/sdk.rs)", 2)
    return value


@pytest.fixture(scope="session")
def router_url() -> str:
    return _env("SDK_ROUTER_URL")


@pytest.fixture(scope="session")
def namespace() -> str:
    return _env("SDK_NAMESPACE")


@pytest.fixture(scope="session")
def warm_pool() -> str:
    return _env("SDK_WARM_POOL")


@pytest.fixture(scope="session")
def runc_pool() -> str:
    return _env("SDK_RUNC_POOL")


@pytest.fixture(scope="session")
def direct(router_url: str) -> SandboxDirectConnectionConfig:
    """The SDK's connection to a router URL: the router the e2e test runs as a host process. The
    SDK's default connection (a `kubectl port-forward` to the router's Service) has its own
    scenario, test_tunnel.py, against the router the e2e test deploys into the cluster."""
    return SandboxDirectConnectionConfig(api_url=router_url)


@pytest.fixture(scope="session")
def client(direct: SandboxDirectConnectionConfig):
    with SandboxClient(connection_config=direct) as sdk:
        yield sdk


@pytest.fixture(scope="session")
def kube():
    """The Kubernetes API, to check what the SDK and the controller wrote."""
    k8s_config.load_kube_config()
    return Kube(k8s_client.CustomObjectsApi(), k8s_client.CoreV1Api())


@pytest.fixture(scope="session")
def sandbox(client: SandboxClient, warm_pool: str, namespace: str):
    """One sandbox from the warm pool, shared by the tests that only run commands and move files
    in it; deleted after the session."""
    handle = client.create_sandbox(warm_pool, namespace=namespace)
    yield handle
    handle.terminate()


class Kube:
    """Reads of the objects the SDK flow involves."""

    def __init__(self, custom: k8s_client.CustomObjectsApi, core: k8s_client.CoreV1Api) -> None:
        self.custom = custom
        self.core = core

    def claim(self, namespace: str, name: str) -> dict | None:
        return self._get("extensions.agents.x-k8s.io", "sandboxclaims", namespace, name)

    def sandbox(self, namespace: str, name: str) -> dict | None:
        return self._get("agents.x-k8s.io", "sandboxes", namespace, name)

    def sandboxes(self, namespace: str) -> list[dict]:
        listed = self.custom.list_namespaced_custom_object(
            "agents.x-k8s.io", "v1beta1", namespace, "sandboxes"
        )
        return listed.get("items", [])

    def pod(self, namespace: str, name: str) -> k8s_client.V1Pod:
        return self.core.read_namespaced_pod(name, namespace)

    def _get(self, group: str, plural: str, namespace: str, name: str) -> dict | None:
        try:
            return self.custom.get_namespaced_custom_object(group, "v1beta1", namespace, plural, name)
        except k8s_client.ApiException as error:
            if error.status == 404:
                return None
            raise


def wait_until(what: str, done, timeout: float = WAIT_SECONDS, every: float = 0.2):
    """Polls `done()` until it returns something truthy (returned) or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = done()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)
