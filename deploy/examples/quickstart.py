"""Run code in a sandbox with upstream's Python SDK (k8s-agent-sandbox), unchanged.

Takes a sandbox from the warm pool `python-pool` (deploy/examples), runs Python in it through the
router, moves a file in and out, and deletes the sandbox. `cargo xtask demo` runs this as its last
step; docs/using-sandboxes.md explains the rest.

With no settings the SDK connects its default way: `kubectl port-forward` (kubectl on PATH, the
cluster of $KUBECONFIG) to Service sandbox-router-svc in agent-sandbox-system, the router of the
default install. SANDBOX_ROUTER_URL names a router URL to use instead (an ingress, a port-forward
of your own):

    python3 quickstart.py
    SANDBOX_ROUTER_URL=http://127.0.0.1:28080 python3 quickstart.py
"""

import os

from k8s_agent_sandbox import SandboxClient
from k8s_agent_sandbox.models import SandboxDirectConnectionConfig

router = os.environ.get("SANDBOX_ROUTER_URL")
namespace = os.environ.get("SANDBOX_NAMESPACE", "default")
connection = SandboxDirectConnectionConfig(api_url=router) if router else None

# Leaving the `with` block deletes the claims this client made (and with them their sandboxes).
with SandboxClient(connection_config=connection) as client:
    sandbox = client.create_sandbox("python-pool", namespace=namespace)
    print(f"claim {sandbox.claim_name} got sandbox {sandbox.sandbox_id}")

    result = sandbox.commands.run("python3 -c 'import platform; print(6 * 7, platform.release())'")
    print(f"python3 in the sandbox: {result.stdout.strip()} (exit code {result.exit_code})")

    sandbox.files.write("hello.txt", "written from the SDK\n")
    print(f"files: {[entry.name for entry in sandbox.files.list('')]}")
    print(f"hello.txt: {sandbox.files.read('hello.txt').decode().strip()}")
