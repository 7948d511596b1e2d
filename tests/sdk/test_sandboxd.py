"""The SDK's sandboxd connection modes: commands over `process.v1.ProcessService/Execute` (gRPC, port
9090), files over `/v1/files` (REST, port 8080), both served by the same runtime binary next to the
legacy API.

Under gVisor the SDK's pod tunnel (`kubectl port-forward` to the pod) cannot work: containerd forwards
by connecting to localhost inside the pod's network namespace, and a gVisor sandbox's sockets live in
gVisor's own network stack, not there (the SDK's docstring says so too). So the gVisor scenarios use
the SDK's other sandboxd mode, straight to the pod IP, which the node's host can route to; the pod
tunnel runs against a runc sandbox of the same image."""

import os

import pytest

from conftest import wait_until
from k8s_agent_sandbox import SandboxClient
from k8s_agent_sandbox.exceptions import SandboxRequestError
from k8s_agent_sandbox.models import SandboxdInClusterConnectionConfig, SandboxdPodTunnelConnectionConfig

BINARY = os.urandom(3 * 1024 * 1024 + 7)


@pytest.fixture(scope="module")
def sandboxd(warm_pool, namespace):
    config = SandboxdInClusterConnectionConfig(mode="in-cluster-pod-ip")
    with SandboxClient(connection_config=config) as sdk:
        handle = sdk.create_sandbox(warm_pool, namespace=namespace)
        yield handle
        handle.terminate()


def test_sandboxd_runs_commands_over_grpc(sandboxd):
    assert sandboxd.connector.is_sandboxd()

    result = sandboxd.commands.run("python3 -c 'print(6*7)'")
    failing = sandboxd.commands.run("echo partial; echo boom >&2; exit 3")
    sandboxd.files.write("work/.keep", b"")
    placed = sandboxd.commands.run("pwd; echo $GREETING", env={"GREETING": "hi"}, cwd="work")

    assert (result.stdout, result.stderr, result.exit_code) == ("42\n", "", 0)
    assert (failing.stdout, failing.stderr, failing.exit_code) == ("partial\n", "boom\n", 3)
    assert placed.stdout == "/workspace/work\nhi\n"


def test_sandboxd_command_past_its_timeout(sandboxd):
    result = sandboxd.commands.run("sleep 39", command_timeout=2)

    assert (result.timed_out, result.exit_code) == (True, 124)
    # The deadline is the client's: the runtime kills the process group when the call is dropped,
    # which may land just after the client gave up.
    processes = "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done"
    wait_until("the timed-out command to be killed", lambda: "sleep 39" not in sandboxd.commands.run(processes).stdout)


def test_sandboxd_files(sandboxd):
    files = sandboxd.files
    files.write("data/blob.bin", BINARY)
    files.write("data/sub/note.txt", "note\n")

    assert files.read("data/blob.bin") == BINARY
    entries = {e.name: e for e in files.list("data")}
    assert (entries["blob.bin"].type, entries["blob.bin"].size) == ("file", len(BINARY))
    assert entries["sub"].type == "directory"
    assert entries["blob.bin"].mode == "0644"
    assert files.exists("data/sub/note.txt")
    assert not files.exists("data/missing")
    assert "data" in {e.name for e in files.list("")}

    with pytest.raises(SandboxRequestError) as not_empty:
        files.delete("data")
    assert not_empty.value.status_code == 409
    files.delete("data", recursive=True)
    assert not files.exists("data/blob.bin")


def test_both_runtimes_give_the_same_answer(sandboxd, sandbox):
    """The legacy API and sandboxd's gRPC service run the same command the same way (upstream's
    legacy runtime splits words and runs no shell, so pipes and `$VAR` differ there)."""
    for command in ["echo plain words", "echo one | tr a-z A-Z", "echo $((6 * 7)); exit 4", "no-such-program"]:
        legacy = sandbox.commands.run(command)
        grpc = sandboxd.commands.run(command)
        assert (legacy.stdout, legacy.exit_code) == (grpc.stdout, grpc.exit_code), command


def test_sandboxd_pod_tunnel_to_a_runc_sandbox(runc_pool, namespace, kube):
    with SandboxClient(connection_config=SandboxdPodTunnelConnectionConfig()) as sdk:
        sandbox = sdk.create_sandbox(runc_pool, namespace=namespace)
        try:
            assert kube.pod(namespace, sandbox.get_pod_name()).spec.runtime_class_name == "runc"
            result = sandbox.commands.run("python3 -c 'print(6*7)'")
            sandbox.files.write("tunnel/blob.bin", BINARY)
            read = sandbox.files.read("tunnel/blob.bin")
        finally:
            sandbox.terminate()

    assert (result.stdout, result.exit_code) == ("42\n", 0)
    assert read == BINARY
