"""The SDK's async client (httpx, kubernetes_asyncio) through the router."""

import asyncio

from conftest import wait_until
from k8s_agent_sandbox import AsyncSandboxClient


def test_async_client_runs_commands_and_moves_files(direct, kube, namespace, warm_pool):
    async def scenario():
        async with AsyncSandboxClient(connection_config=direct) as sdk:
            sandbox = await sdk.create_sandbox(warm_pool, namespace=namespace)
            claim = sandbox.claim_name
            # Two commands at once on one client: the router forwards both.
            six, seven = await asyncio.gather(
                sandbox.commands.run("python3 -c 'print(6)'"),
                sandbox.commands.run("python3 -c 'print(7)'"),
            )
            await sandbox.files.write("async.bin", bytes(range(256)) * 1024)
            read = await sandbox.files.read("async.bin")
            listed = [e.name for e in await sandbox.files.list("")]
            timed = await sandbox.commands.run("sleep 41", command_timeout=1)
            await sandbox.terminate()
            return claim, six, seven, read, listed, timed

    claim, six, seven, read, listed, timed = asyncio.run(scenario())

    assert (six.stdout, seven.stdout) == ("6\n", "7\n")
    assert read == bytes(range(256)) * 1024
    assert "async.bin" in listed
    assert (timed.timed_out, timed.exit_code) == (True, 124)
    wait_until("the claim to be deleted", lambda: kube.claim(namespace, claim) is None)
