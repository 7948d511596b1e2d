//! Pods reach the API server the way in-cluster clients do (the `kubernetes` Service, its CA and the
//! Pod's service-account token), under gVisor and runc, and by no other way: the API server itself
//! listens on the host's loopback only, and the node's bridge address does not lead to it.

use agent_sandbox_testkit::TestEnv;
use agent_sandbox_testkit::cluster;
use anyhow::{Context, ensure};
use kube::ResourceExt;
use serde_json::json;

use super::{
    create_sandbox, ensure_on_real_node, exec, exec_ok, pod_template, python_sleeper, sandbox_pod,
    wait_sandbox_ready,
};

/// Asks the API server who the Pod is (a SelfSubjectReview, which every authenticated identity may
/// create) through `$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`, verifying the server with
/// the mounted CA, and prints the username it answered with.
const WHO_AM_I: &str = "\
import json, os, ssl, urllib.request
account = '/var/run/secrets/kubernetes.io/serviceaccount'
host, port = os.environ['KUBERNETES_SERVICE_HOST'], os.environ['KUBERNETES_SERVICE_PORT']
request = urllib.request.Request(
    f'https://{host}:{port}/apis/authentication.k8s.io/v1/selfsubjectreviews',
    data=json.dumps({'apiVersion': 'authentication.k8s.io/v1', 'kind': 'SelfSubjectReview'}).encode(),
    headers={'Authorization': 'Bearer ' + open(f'{account}/token').read(), 'Content-Type': 'application/json'},
)
context = ssl.create_default_context(cafile=f'{account}/ca.crt')
answer = json.load(urllib.request.urlopen(request, context=context, timeout=20))
print(answer['status']['userInfo']['username'])
";

/// Opens a TCP connection to `argv[1]:argv[2]` and prints `connected`, or exits 1 with the error.
const CONNECT: &str = "\
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()
    print('connected')
except OSError as error:
    sys.exit(f'not connected: {error}')
";

/// The node's bridge address, where the kubelet and CoreDNS listen (config of `cargo xtask cluster`).
const BRIDGE_ADDRESS: &str = "10.88.0.1";

/// One Sandbox per runtime class: each authenticates to the API server as its own service account
/// through the `kubernetes` Service, and cannot open a connection to the API server's port on the
/// node's bridge address.
pub async fn pods_reach_the_api_server_through_its_service(env: TestEnv) -> anyhow::Result<()> {
    let apiserver_port = cluster::config()
        .await?
        .cluster_url
        .port_u16()
        .context("the kubeconfig's server names no port")?
        .to_string();
    for runtime in ["gvisor", "runc"] {
        let name = format!("client-{runtime}");
        create_sandbox(
            &env,
            &name,
            pod_template(
                runtime,
                json!([python_sleeper()]),
                json!({"automountServiceAccountToken": true}),
            ),
            json!({}),
        )
        .await?;
        let sandbox = wait_sandbox_ready(&env, &name).await?;
        let pod = sandbox_pod(&env, &sandbox).await?;
        ensure_on_real_node(&pod, runtime)?;

        let user = exec_ok(&env, &pod.name_any(), &["python3", "-c", WHO_AM_I])
            .await
            .with_context(|| format!("a {runtime} Pod asking the API server who it is"))?;
        let expected = format!("system:serviceaccount:{}:default", env.namespace);
        ensure!(
            user == expected,
            "the API server answered a {runtime} Pod as {user:?}, not {expected:?}"
        );

        let direct = exec(
            &env,
            &pod.name_any(),
            &["python3", "-c", CONNECT, BRIDGE_ADDRESS, &apiserver_port],
        )
        .await?;
        ensure!(
            !direct.stdout.contains("connected"),
            "a {runtime} Pod opened a connection to {BRIDGE_ADDRESS}:{apiserver_port}: {direct:?}"
        );
    }
    Ok(())
}
