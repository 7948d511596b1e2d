//! `cargo xtask demo`: the README's main job. A placeholder until the Sandbox controller exists.

/// Explains what the demo will do; there is no controller to run yet.
pub fn run() -> anyhow::Result<()> {
    println!(
        "The demo is not available yet: the Sandbox controller has not landed.\n\
         When it has, `cargo xtask demo` will:\n  \
         1. start the local control plane (`cargo xtask cluster up`: etcd, kube-apiserver, controller-manager,\n     \
         scheduler and kwok nodes),\n  \
         2. install deploy/crds and start the controller,\n  \
         3. apply deploy/examples (template, warm pool, claim) and wait until the claim is Ready,\n  \
         4. print how to look around and how to stop (`cargo xtask cluster down`).\n\
         Today you can already run `cargo xtask cluster up` and `kubectl apply -f deploy/crds -f deploy/examples`."
    );
    Ok(())
}
