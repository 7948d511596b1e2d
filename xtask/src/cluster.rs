//! `cargo xtask cluster up | down | status | env | build`: a local Kubernetes cluster (etcd,
//! kube-apiserver, kube-controller-manager, kube-scheduler, kwok fake nodes and one real node with
//! containerd, runc and gVisor) built from pinned Go modules and run as plain processes on this
//! machine. See docs/local-cluster.md.

mod build;
mod components;
pub mod gobuild;
mod layout;
mod manifests;
pub mod node;
mod pki;
mod process;
pub mod residue;

use std::process::Command;
use std::time::{Duration, Instant};

use agent_sandbox_hostcmd as hostcmd;
use anyhow::{Context, bail};

use build::Binaries;
use layout::Layout;
pub(crate) use layout::ports;

/// Flags of `cargo xtask cluster`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// Build (or reuse) the binaries and start the cluster; a healthy running cluster is reused.
    Up {
        /// Number of kwok fake nodes.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Start no real node (kwok fake nodes only): no containerd, kubelet, gVisor or host changes.
        #[arg(long)]
        no_real_node: bool,
    },
    /// Stop every component started by `up` and remove target/cluster.
    Down,
    /// Show each component's health; exits non-zero if any is unhealthy.
    Status,
    /// Print shell exports (KUBECONFIG, PATH with our kubectl) for `eval "$(cargo xtask cluster env)"`.
    Env,
    /// Snapshot what a cluster may leave on this machine (sysctls, iptables, links, mounts, cgroups,
    /// processes) with `--save FILE` before `up`; `--check FILE` after `down` fails on any difference.
    Residue {
        /// Write the current snapshot to this file.
        #[arg(long, value_name = "FILE", conflicts_with = "check")]
        save: Option<std::path::PathBuf>,
        /// Compare the current state with the snapshot in this file.
        #[arg(long, value_name = "FILE", required_unless_present = "save")]
        check: Option<std::path::PathBuf>,
    },
    /// Only build (or find in the cache) the control-plane and node binaries.
    Build {
        /// Build the control plane only, not the real node's programs.
        #[arg(long)]
        no_real_node: bool,
    },
}

/// Runs a `cargo xtask cluster` subcommand.
pub fn run(args: &Args) -> anyhow::Result<()> {
    match &args.command {
        Cmd::Up {
            nodes,
            no_real_node,
        } => up(*nodes, !no_real_node).map(|_| ()),
        Cmd::Down => down(),
        Cmd::Residue { save, check } => {
            let now = residue::Snapshot::take();
            if let Some(path) = save {
                return now.save(path);
            }
            let before = residue::Snapshot::load(check.as_deref().context("--check FILE")?)?;
            before.compare(&now)?;
            eprintln!("[cluster] nothing left behind");
            Ok(())
        }
        Cmd::Status => status(),
        Cmd::Env => env(),
        Cmd::Build { no_real_node } => {
            println!("{}", build::ensure()?.bin_dir.display());
            if !*no_real_node {
                let node = node::build::ensure()?;
                println!("{}", node.node_bin.display());
                println!("{}", node.gvisor_bin.display());
            }
            Ok(())
        }
    }
}

/// Whether `up` started the cluster or found one running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpOutcome {
    /// A healthy cluster was already running and is reused.
    Reused,
    /// This call started the cluster.
    Started,
}

/// Starts the cluster (with the real node unless `real_node` is false) unless a healthy one is
/// already running.
pub fn up(nodes: usize, real_node: bool) -> anyhow::Result<UpOutcome> {
    let layout = Layout::new();
    let _lock = lock(&layout)?;
    let bins = build::ensure()?;
    if real_node {
        node::build::ensure()?;
    }
    let node_ok = !real_node || node::health().iter().all(|(_, _, h)| h.is_ok());
    if node_ok && health(&layout, &bins).iter().all(|c| c.healthy) {
        eprintln!("[cluster] already running and healthy; reusing it");
        print_env(&layout, &bins);
        return Ok(UpOutcome::Reused);
    }
    stop_all(&layout)?;
    if layout.dir.exists() {
        std::fs::remove_dir_all(&layout.dir)
            .with_context(|| format!("removing stale {}", layout.dir.display()))?;
    }
    check_ports_free()?;
    let started = Instant::now();
    match start(&layout, &bins, nodes).and_then(
        |()| {
            if real_node { node::up(&bins) } else { Ok(()) }
        },
    ) {
        Ok(()) => {
            eprintln!(
                "[cluster] up in {:.1}s: {nodes} kwok nodes{} Ready; logs in {}",
                started.elapsed().as_secs_f64(),
                if real_node { " and the real node" } else { "" },
                layout.dir.join("logs").display()
            );
            print_env(&layout, &bins);
            Ok(UpOutcome::Started)
        }
        Err(err) => {
            if let Err(e) = stop_all(&layout) {
                eprintln!("[cluster] {e:#}");
            }
            Err(err.context(format!(
                "cluster up failed; components stopped, logs kept in {}",
                layout.dir.join("logs").display()
            )))
        }
    }
}

/// Serialises `up` and `down` of one checkout (e.g. two test runs at once); released on drop.
fn lock(layout: &Layout) -> anyhow::Result<std::fs::File> {
    let path = layout.dir.with_file_name("cluster.lock");
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let file =
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    if file.try_lock().is_err() {
        eprintln!("[cluster] waiting for another `cargo xtask cluster` of this checkout ...");
        file.lock()
            .with_context(|| format!("locking {}", path.display()))?;
    }
    Ok(file)
}

fn check_ports_free() -> anyhow::Result<()> {
    let all = [
        ("etcd client", ports::etcd_client()),
        ("etcd peer", ports::etcd_peer()),
        ("kube-apiserver", ports::apiserver()),
        ("kube-controller-manager", ports::controller_manager()),
        ("kube-scheduler", ports::scheduler()),
        ("kwok", ports::kwok()),
    ];
    for (what, port) in all {
        if process::port_open(port) {
            bail!(
                "port 127.0.0.1:{port} (for {what}) is already in use by a process this cluster did not \
                 start; stop it (e.g. a cluster of another checkout: `cargo xtask cluster down` there)"
            );
        }
    }
    Ok(())
}

fn start(layout: &Layout, bins: &Binaries, nodes: usize) -> anyhow::Result<()> {
    layout.create_dirs()?;
    pki::write_all(layout)?;
    std::fs::write(
        layout.config_file("scheduler.yaml"),
        components::scheduler_config(layout),
    )?;
    std::fs::write(layout.config_file("kwok.yaml"), manifests::kwok_config())?;
    std::fs::write(
        layout.config_file("bootstrap.yaml"),
        manifests::bootstrap(nodes),
    )?;
    let probes: [(&str, Duration); 5] = [
        ("etcd", Duration::from_secs(30)),
        ("kube-apiserver", Duration::from_secs(120)),
        ("kube-controller-manager", Duration::from_secs(60)),
        ("kube-scheduler", Duration::from_secs(60)),
        ("kwok", Duration::from_secs(60)),
    ];
    for (component, (name, timeout)) in components::all(layout).into_iter().zip(probes) {
        let t = Instant::now();
        let mut child = process::spawn(
            layout,
            component.name,
            &components::program_path(bins, &component),
            &component.args,
            &[],
        )?;
        wait_healthy(layout, bins, name, &mut child, timeout)?;
        eprintln!(
            "[cluster] {name} healthy after {:.1}s",
            t.elapsed().as_secs_f64()
        );
    }
    hostcmd::stdout(
        kubectl(bins, layout)
            .arg("apply")
            .arg("-f")
            .arg(layout.config_file("bootstrap.yaml")),
    )
    .context("applying the fake nodes and StorageClass")?;
    hostcmd::stdout(kubectl(bins, layout).args([
        "wait",
        "--for=condition=Ready",
        "node",
        "-l",
        "type=kwok",
        "--timeout=90s",
    ]))
    .context("waiting for the kwok nodes to become Ready")
    .map_err(|e| {
        e.context(format!(
            "kwok log:\n{}",
            process::log_tail(layout, "kwok", 30)
        ))
    })?;
    Ok(())
}

/// Our kubectl, pointed at the cluster's kubeconfig.
fn kubectl(bins: &Binaries, layout: &Layout) -> Command {
    let mut cmd = Command::new(bins.program("kubectl"));
    cmd.arg("--kubeconfig").arg(layout.kubeconfig());
    cmd
}

/// Waits until a component answers its health probe, failing early (with its log) if it exits.
fn wait_healthy(
    layout: &Layout,
    bins: &Binaries,
    name: &str,
    child: &mut std::process::Child,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            bail!(
                "{name} exited during startup ({status}). Last lines of {}:\n{}",
                layout.log(name).display(),
                process::log_tail(layout, name, 25)
            );
        }
        if probe(layout, bins, name).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            let why = probe(layout, bins, name)
                .err()
                .map(|e| format!("{e:#}"))
                .unwrap_or_default();
            bail!(
                "{name} did not become healthy within {}s ({why}). Last lines of {}:\n{}",
                timeout.as_secs(),
                layout.log(name).display(),
                process::log_tail(layout, name, 25)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One health probe of a component.
fn probe(layout: &Layout, bins: &Binaries, name: &str) -> anyhow::Result<()> {
    match name {
        "etcd" => {
            let (code, body) = process::http_get(ports::etcd_client(), "/health")?;
            if code != 200 || !body.contains("true") {
                bail!("etcd /health answered {code}: {body}");
            }
        }
        "kube-apiserver" => {
            let out = kubectl(bins, layout)
                .args(["get", "--raw", "/readyz"])
                .output()?;
            if !out.status.success() {
                bail!("/readyz: {}", String::from_utf8_lossy(&out.stderr).trim());
            }
        }
        "kube-controller-manager" if !process::port_open(ports::controller_manager()) => {
            bail!("not listening on {}", ports::controller_manager())
        }
        "kube-scheduler" if !process::port_open(ports::scheduler()) => {
            bail!("not listening on {}", ports::scheduler())
        }
        "kwok" => {
            let (code, body) = process::http_get(ports::kwok(), "/healthz")?;
            if code != 200 {
                bail!("kwok /healthz answered {code}: {body}");
            }
        }
        _ => {}
    }
    Ok(())
}

/// Health of one component as `status` reports it.
struct Health {
    name: &'static str,
    pid: Option<u32>,
    healthy: bool,
    detail: String,
}

fn health(layout: &Layout, bins: &Binaries) -> Vec<Health> {
    components::all(layout)
        .into_iter()
        .map(|c| {
            let pid = process::running_pid(layout, c.name);
            let (healthy, detail) = match (pid, probe(layout, bins, c.name)) {
                (None, _) => (false, "not running".to_string()),
                (Some(_), Ok(())) => (true, "healthy".to_string()),
                (Some(_), Err(e)) => (false, format!("unhealthy: {e:#}")),
            };
            Health {
                name: c.name,
                pid,
                healthy,
                detail,
            }
        })
        .collect()
}

fn status() -> anyhow::Result<()> {
    let layout = Layout::new();
    let bins = build::cached()?;
    let report = health(&layout, &bins);
    for h in &report {
        let pid = h.pid.map_or("-".to_string(), |p| p.to_string());
        println!("{:<26} pid {:<8} {}", h.name, pid, h.detail);
    }
    let mut node_ok = true;
    if layout.dir.join("node").exists() {
        for (name, pid, probe) in node::health() {
            let pid = pid.map_or("-".to_string(), |p| p.to_string());
            let detail = match &probe {
                Ok(()) => "healthy".to_string(),
                Err(e) => format!("unhealthy: {e:#}"),
            };
            node_ok &= probe.is_ok();
            println!("{:<26} pid {pid:<8} {detail}", format!("{name} (node-0)"));
        }
    }
    if node_ok && report.iter().all(|h| h.healthy) {
        let out = kubectl(&bins, &layout)
            .args(["get", "nodes", "-o", "wide"])
            .output()?;
        print!("{}", String::from_utf8_lossy(&out.stdout));
        Ok(())
    } else {
        bail!(
            "the local cluster is not healthy; logs in {}",
            layout.dir.join("logs").display()
        )
    }
}

/// Stops the real node (putting the machine back) and every control-plane component. Everything is
/// stopped even when the node's restore fails; that failure is returned.
fn stop_all(layout: &Layout) -> anyhow::Result<()> {
    let node = node::down();
    for component in components::all(layout).iter().rev() {
        match process::stop(layout, component.name, Duration::from_secs(10)) {
            Ok(true) => eprintln!("[cluster] stopped {}", component.name),
            Ok(false) => {}
            Err(e) => eprintln!("[cluster] could not stop {}: {e:#}", component.name),
        }
    }
    node
}

/// Stops every component and removes the cluster's state.
pub fn down() -> anyhow::Result<()> {
    let layout = Layout::new();
    let _lock = lock(&layout)?;
    let stopped = stop_all(&layout);
    if layout.dir.exists() {
        std::fs::remove_dir_all(&layout.dir)
            .with_context(|| format!("removing {}", layout.dir.display()))?;
    }
    stopped.context("the real node was stopped but the machine is not fully restored")?;
    eprintln!("[cluster] down");
    Ok(())
}

/// The directory of the built control-plane programs (kubectl among them).
pub fn bin_dir() -> anyhow::Result<std::path::PathBuf> {
    Ok(build::cached()?.bin_dir)
}

/// The admin kubeconfig of the local cluster (target/cluster/kubeconfig).
pub fn kubeconfig_path() -> std::path::PathBuf {
    Layout::new().kubeconfig()
}

/// Copies the component logs to target/cluster-failure-logs/ so that `down` does not lose them.
pub fn keep_logs_of_failure() {
    let layout = Layout::new();
    let from = layout.dir.join("logs");
    let to = layout.dir.with_file_name("cluster-failure-logs");
    let _ = std::fs::remove_dir_all(&to);
    let copied = std::fs::create_dir_all(&to).and_then(|()| {
        for entry in std::fs::read_dir(&from)? {
            let entry = entry?;
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
        Ok(())
    });
    match copied {
        Ok(()) => eprintln!("[cluster] component logs kept in {}", to.display()),
        Err(e) => eprintln!(
            "[cluster] could not keep the logs of {}: {e}",
            from.display()
        ),
    }
}

fn print_env(layout: &Layout, bins: &Binaries) {
    println!("export KUBECONFIG={}", layout.kubeconfig().display());
    println!("export AGENT_SANDBOX_KUBE_BIN={}", bins.bin_dir.display());
    println!("export PATH=\"{}:$PATH\"", bins.bin_dir.display());
}

fn env() -> anyhow::Result<()> {
    print_env(&Layout::new(), &build::cached()?);
    Ok(())
}
