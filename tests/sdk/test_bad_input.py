"""Bad input through the SDK and the router: refused with the right status, and nothing touched."""

import pytest
import requests

from k8s_agent_sandbox.exceptions import SandboxRequestError
from k8s_agent_sandbox.sandbox import Sandbox


def _status(call) -> int:
    with pytest.raises(SandboxRequestError) as refused:
        call()
    return refused.value.status_code


def test_a_path_escape_is_refused_and_touches_nothing(sandbox):
    files = sandbox.files
    # A link inside the root that points out of it, made by a command in the sandbox.
    assert sandbox.commands.run("ln -sfn /tmp outside").exit_code == 0
    # The SDK refuses `..` itself; allow_unsafe_paths sends the path as given, so the runtime decides.
    escapes = ["../tmp/escaped", "/workspace/../tmp/escaped", "outside/escaped"]

    for path in escapes:
        assert _status(lambda: files.write(path, b"x", allow_unsafe_paths=True)) == 403, path
    assert _status(lambda: files.read("../etc/passwd", allow_unsafe_paths=True)) == 403
    assert _status(lambda: files.read("outside/../../etc/passwd", allow_unsafe_paths=True)) == 403

    assert sandbox.commands.run("test -e /tmp/escaped").exit_code == 1
    with pytest.raises(ValueError):
        files.write("../tmp/escaped", b"x")


def test_an_unknown_sandbox_is_404_from_the_router(direct, namespace):
    ghost = Sandbox(claim_name=None, sandbox_id="no-such-sandbox", namespace=namespace, connection_config=direct)

    with pytest.raises(SandboxRequestError) as refused:
        ghost.commands.run("true")

    assert refused.value.status_code == 404
    assert refused.value.response.json() == {"detail": f"sandbox {namespace}/no-such-sandbox not found"}


def test_a_pod_ip_that_is_not_the_sandbox_s_is_refused(sandbox, kube, router_url, namespace):
    """The SDK sends X-Sandbox-Pod-IP from the Sandbox's status; the router only accepts that
    Sandbox's own pod IPs. Another Sandbox's pod, the node and loopback are refused unreached."""
    own = sandbox.get_pod_ip()
    others = [
        ip
        for s in kube.sandboxes(namespace)
        if s["metadata"]["name"] != sandbox.sandbox_id
        for ip in (s.get("status") or {}).get("podIPs") or []
    ]
    assert others, "the warm pool should hold another Sandbox with a pod IP"

    def execute(pod_ip):
        headers = {"X-Sandbox-ID": sandbox.sandbox_id, "X-Sandbox-Namespace": namespace, "X-Sandbox-Pod-IP": pod_ip}
        return requests.post(f"{router_url}/execute", json={"command": "echo reached"}, headers=headers, timeout=30)

    for foreign in [others[0], "10.88.0.1", "127.0.0.1", "169.254.169.254"]:
        answer = execute(foreign)
        assert answer.status_code == 403, (foreign, answer.text)
        assert "is not an IP of sandbox" in answer.json()["detail"], foreign
    assert execute(own).json()["stdout"] == "reached\n"
