"""The SDK's default connection, used with no connection config at all: the SDK checks that Service
sandbox-router-svc exists in agent-sandbox-system and runs `kubectl port-forward` to it. The e2e test
deployed that router into the cluster (deploy/local-cluster/router: the default install's router
from the locally built image, on the real node), so every request below goes laptop → port-forward
→ router pod → sandbox pod, as on a real cluster."""

from k8s_agent_sandbox import SandboxClient
from k8s_agent_sandbox.models import SandboxLocalTunnelConnectionConfig

from conftest import wait_until


def test_the_default_connection_tunnels_to_the_in_cluster_router(kube, namespace, warm_pool):
    with SandboxClient() as client:
        assert isinstance(client.connection_config, SandboxLocalTunnelConnectionConfig)
        sandbox = client.create_sandbox(warm_pool, namespace=namespace)
        claim = sandbox.claim_name
        try:
            result = sandbox.commands.run("python3 -c 'print(6*7)'")
            assert (result.stdout, result.stderr, result.exit_code) == ("42\n", "", 0)

            # A binary file of 1 MiB both ways through the tunnel.
            payload = bytes(range(256)) * 4096
            sandbox.files.write("through-the-tunnel.bin", payload)
            assert sandbox.files.read("through-the-tunnel.bin") == payload
        finally:
            client.delete_sandbox(claim, namespace=namespace)
    wait_until(f"claim {claim} to be deleted", lambda: kube.claim(namespace, claim) is None)
