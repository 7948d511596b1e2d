//! Certificates, keys, the static token file and the admin kubeconfig, made with the openssl CLI.

use agent_sandbox_hostcmd as hostcmd;
use anyhow::Context;

use super::layout::{ADMIN_TOKEN, KUBERNETES_SERVICE_IP, Layout, ports};

fn openssl(args: &[&str]) -> anyhow::Result<()> {
    hostcmd::output("openssl", args).context(
        "making the cluster's certificates needs `openssl` (Debian's `openssl` package)",
    )?;
    Ok(())
}

fn path(layout: &Layout, name: &str) -> String {
    layout.pki_file(name).display().to_string()
}

/// `openssl req` with a new P-256 key, unencrypted, written to `<stem>.key`, for subject `cn`;
/// `out` and `extra` say what it makes (a self-signed certificate or a signing request).
fn new_ec_key(
    layout: &Layout,
    stem: &str,
    cn: &str,
    out: &str,
    extra: &[&str],
) -> anyhow::Result<()> {
    let (key, out, subject) = (
        path(layout, &format!("{stem}.key")),
        path(layout, out),
        format!("/CN={cn}"),
    );
    let mut args = vec![
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        &key,
        "-out",
        &out,
        "-subj",
        &subject,
    ];
    args.extend_from_slice(extra);
    openssl(&args)
}

/// Writes a CA, the apiserver's serving certificate, the service-account signing key pair,
/// the static token file and the admin kubeconfig.
pub fn write_all(layout: &Layout) -> anyhow::Result<()> {
    new_ec_key(
        layout,
        "ca",
        "agent-sandbox-local-ca",
        "ca.crt",
        &["-x509", "-days", "3650"],
    )?;
    write_serving_certificate(layout)?;
    let p = |name: &str| path(layout, name);
    openssl(&["genrsa", "-out", &p("sa.key"), "2048"])?;
    openssl(&["rsa", "-in", &p("sa.key"), "-pubout", "-out", &p("sa.pub")])?;
    std::fs::write(
        layout.pki_file("tokens.csv"),
        format!("{ADMIN_TOKEN},admin,admin-uid,\"system:masters\"\n"),
    )
    .context("writing tokens.csv")?;
    std::fs::write(layout.kubeconfig(), kubeconfig(layout)).context("writing kubeconfig")?;
    Ok(())
}

/// The apiserver's key and its certificate from the CA, for every name it is reached by.
fn write_serving_certificate(layout: &Layout) -> anyhow::Result<()> {
    std::fs::write(
        layout.pki_file("serving.ext"),
        format!(
            "basicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth\n\
             subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,\
             DNS:kubernetes.default.svc,IP:{KUBERNETES_SERVICE_IP}\n"
        ),
    )
    .context("writing serving.ext")?;
    new_ec_key(layout, "apiserver", "kube-apiserver", "apiserver.csr", &[])?;
    let p = |name: &str| path(layout, name);
    openssl(&[
        "x509",
        "-req",
        "-in",
        &p("apiserver.csr"),
        "-CA",
        &p("ca.crt"),
        "-CAkey",
        &p("ca.key"),
        "-CAcreateserial",
        "-out",
        &p("apiserver.crt"),
        "-days",
        "3650",
        "-extfile",
        &p("serving.ext"),
    ])
}

/// The admin kubeconfig: server on loopback, our CA, the static admin token.
fn kubeconfig(layout: &Layout) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: agent-sandbox-local
  cluster:
    server: https://127.0.0.1:{port}
    certificate-authority: {ca}
users:
- name: admin
  user:
    token: {ADMIN_TOKEN}
contexts:
- name: agent-sandbox-local
  context:
    cluster: agent-sandbox-local
    user: admin
    namespace: default
current-context: agent-sandbox-local
",
        port = ports::apiserver(),
        ca = layout.pki_file("ca.crt").display(),
    )
}
