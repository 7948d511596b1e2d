"""The claim lifecycle the SDK drives: the labels and annotations it writes and reads, re-attaching
by claim name, and deletion."""

from datetime import datetime

from conftest import wait_until

CREATED_BY = "agents.x-k8s.io/created-by"
REQUESTED_AT = "agents.x-k8s.io/client-first-requested-at"
NAME_HASH = "agents.x-k8s.io/sandbox-name-hash"


def test_claim_and_pod_metadata_as_upstream_s_sdk_expects(client, kube, namespace, warm_pool):
    sandbox = client.create_sandbox(
        warm_pool,
        namespace=namespace,
        labels={"team": "agents"},
        pod_labels={"sandbox.users.io/session": "s-123"},
        pod_annotations={"example.com/note": "from the SDK"},
        shutdown_after_seconds=600,
    )
    try:
        # What the SDK wrote on the claim, kept by the controller.
        claim = kube.claim(namespace, sandbox.claim_name)
        labels = claim["metadata"]["labels"]
        assert (labels[CREATED_BY], labels["team"]) == ("python-client", "agents")
        datetime.fromisoformat(claim["metadata"]["annotations"][REQUESTED_AT])
        assert claim["spec"]["lifecycle"]["shutdownPolicy"] == "Delete"

        # What the SDK reads back from the Sandbox: its status, its pod's name and name hash, its
        # pod IP (sent to the router as X-Sandbox-Pod-IP).
        assert sandbox.status()[0] == "SandboxReady"
        pod = kube.pod(namespace, sandbox.get_pod_name())
        assert pod.metadata.labels[NAME_HASH] == sandbox.get_sandbox_name_hash()
        assert sandbox.get_pod_ip() == pod.status.pod_ip

        # The pod metadata of the claim reached the adopted pod.
        assert pod.metadata.labels["sandbox.users.io/session"] == "s-123"
        assert pod.metadata.annotations["example.com/note"] == "from the SDK"

        # Listing by label and re-attaching by claim name find the same sandbox.
        assert sandbox.claim_name in client.list_all_sandboxes(namespace, label_selector="team=agents")
        sandbox.close_connection()
        again = client.get_sandbox(sandbox.claim_name, namespace=namespace)
        assert again.sandbox_id == sandbox.sandbox_id
        assert again.commands.run("echo attached").stdout == "attached\n"
    finally:
        client.delete_sandbox(sandbox.claim_name, namespace=namespace)


def test_claim_env_reaches_the_sandbox_s_commands(client, kube, namespace, warm_pool):
    """`env=` puts variables in the claim (the template allows it), which the controller injects
    into a sandbox started cold for the claim; the runtime's commands inherit them."""
    sandbox = client.create_sandbox(warm_pool, namespace=namespace, env={"GREETING": "from the claim"})
    try:
        claim = kube.claim(namespace, sandbox.claim_name)
        assert claim["spec"]["env"] == [{"name": "GREETING", "value": "from the claim"}]
        result = sandbox.commands.run("printenv GREETING")
    finally:
        client.delete_sandbox(sandbox.claim_name, namespace=namespace)

    assert (result.stdout, result.exit_code) == ("from the claim\n", 0)


def test_terminate_deletes_the_claim_and_its_sandbox(client, kube, namespace, warm_pool):
    sandbox = client.create_sandbox(warm_pool, namespace=namespace)
    claim_name, sandbox_name = sandbox.claim_name, sandbox.sandbox_id
    pod_name = sandbox.get_pod_name()
    assert sandbox.commands.run("true").exit_code == 0

    sandbox.terminate()

    wait_until("the claim to be deleted", lambda: kube.claim(namespace, claim_name) is None)
    wait_until("its Sandbox to be deleted", lambda: kube.sandbox(namespace, sandbox_name) is None)
    wait_until("its pod to be deleted", lambda: pod_name not in _pod_names(kube, namespace))
    assert sandbox.status()[0] == "SandboxNotFound"
    assert not sandbox.is_active


def _pod_names(kube, namespace):
    return {p.metadata.name for p in kube.core.list_namespaced_pod(namespace).items}
