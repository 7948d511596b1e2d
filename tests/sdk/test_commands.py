"""Commands through the router with the SDK's default runtime (the legacy python-runtime API, port
8888), in a sandbox taken from the warm pool."""

# Lists the processes of the sandbox whose command line is exactly the given words; written into
# the sandbox once and run there to show that a timed-out command left nothing behind.
PROCS = """
import os, sys
wanted = [w.encode() for w in sys.argv[1:]]
found = 0
for pid in os.listdir('/proc'):
    try:
        with open(f'/proc/{pid}/cmdline', 'rb') as f:
            found += f.read().split(b'\\0')[:-1] == wanted
    except (OSError, ValueError):
        pass
print(found)
"""


def test_a_warm_pool_sandbox_runs_python(sandbox, kube, namespace, warm_pool):
    # The claim was served by adopting a pre-warmed member of the pool, not by a cold start.
    assert sandbox.sandbox_id != sandbox.claim_name
    assert sandbox.sandbox_id.startswith(f"{warm_pool}-")
    claim = kube.claim(namespace, sandbox.claim_name)
    assert claim["status"]["sandbox"]["name"] == sandbox.sandbox_id
    pod = kube.pod(namespace, sandbox.get_pod_name())
    assert pod.spec.runtime_class_name == "gvisor"
    assert pod.spec.node_name == "node-0"

    result = sandbox.commands.run("python3 -c 'print(6*7)'")

    assert (result.stdout, result.stderr, result.exit_code, result.timed_out) == ("42\n", "", 0, False)


def test_a_failing_command_reports_its_exit_code_and_stderr(sandbox):
    result = sandbox.commands.run(
        "python3 -c 'import sys; print(\"partial\"); sys.stderr.write(\"boom\\n\"); sys.exit(3)'"
    )

    assert (result.stdout, result.stderr, result.exit_code) == ("partial\n", "boom\n", 3)
    missing = sandbox.commands.run("no-such-program --flag")
    assert missing.exit_code == 127
    assert "no-such-program" in missing.stderr


def test_a_command_past_its_timeout_is_killed_with_its_children(sandbox):
    sandbox.files.write("procs.py", PROCS)

    # Shell syntax: the runtime runs it with /bin/sh -c, so the background sleep is a grandchild.
    result = sandbox.commands.run("sleep 37 & sleep 38", command_timeout=2)

    assert result.timed_out
    assert result.exit_code == 124
    assert "timed out" in result.stderr
    # The whole process group was killed before the answer was sent.
    for words in (["sleep", "37"], ["sleep", "38"]):
        left = sandbox.commands.run("python3 procs.py " + " ".join(words))
        assert left.stdout == "0\n", f"{words} still runs: {left}"

