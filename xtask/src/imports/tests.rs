use super::*;

/// Writes a crate `demo` made of `files` (paths below `src/`) and returns what the check prints.
fn check_crate(files: &[(&str, &str)]) -> Vec<String> {
    let dir = tempfile::tempdir().expect("temporary directory");
    for (path, text) in files {
        let file = dir.path().join("src").join(path);
        std::fs::create_dir_all(file.parent().expect("a parent")).expect("directories");
        std::fs::write(&file, text).expect("a source file");
    }
    let root = dir.path().join("src/lib.rs");
    check(dir.path(), &[("demo".to_owned(), root)])
        .expect("the check runs")
        .into_iter()
        .map(|f| f.printed)
        .collect()
}

#[test]
fn an_item_of_the_crate_root_imported_below_it_is_upward() {
    let found = check_crate(&[
        ("lib.rs", "mod a;\npub struct Error;\n"),
        ("a.rs", "use crate::Error;\npub fn f(_: Error) {}\n"),
    ]);
    assert_eq!(
        found,
        ["src/a.rs:1: demo::a imports crate::Error defined in ancestor demo"]
    );
}

#[test]
fn a_helper_of_the_parent_used_by_a_child_is_upward_by_use_or_by_path() {
    let found = check_crate(&[
        ("lib.rs", "mod cluster;\n"),
        ("cluster/mod.rs", "mod node;\nmod pki;\nfn helper() {}\n"),
        ("cluster/node.rs", "use super::helper;\n"),
        ("cluster/pki.rs", "fn f() {\n    super::helper();\n}\n"),
    ]);
    assert_eq!(
        found,
        [
            "src/cluster/node.rs:1: demo::cluster::node imports super::helper defined in ancestor demo::cluster",
            "src/cluster/pki.rs:2: demo::cluster::pki imports super::helper defined in ancestor demo::cluster",
        ]
    );
}

#[test]
fn an_item_reached_through_an_imported_ancestor_module_is_upward() {
    let found = check_crate(&[
        ("lib.rs", "mod cluster;\n"),
        ("cluster.rs", "mod node;\npub fn check() {}\n"),
        (
            "cluster/node.rs",
            "use crate::cluster;\nfn f() {\n    cluster::check();\n}\n",
        ),
    ]);
    assert_eq!(
        found,
        [
            "src/cluster/node.rs:3: demo::cluster::node imports cluster::check defined in ancestor demo::cluster"
        ]
    );
}

#[test]
fn a_glob_import_of_an_ancestor_with_items_is_upward() {
    let found = check_crate(&[
        ("lib.rs", "mod a;\nconst LIMIT: u8 = 1;\n"),
        ("a.rs", "use super::*;\n"),
    ]);
    assert_eq!(
        found,
        ["src/a.rs:1: demo::a imports super::* defined in ancestor demo"]
    );
}

#[test]
fn a_re_export_of_an_item_defined_below_is_not_upward() {
    let found = check_crate(&[
        (
            "lib.rs",
            "mod error;\nmod run;\npub use error::Error;\npub use run::*;\n",
        ),
        ("error.rs", "pub struct Error;\n"),
        (
            "run.rs",
            "use crate::Error;\npub fn run() -> Error { Error }\n",
        ),
    ]);
    assert_eq!(found, Vec::<String>::new());
}

#[test]
fn sibling_modules_that_use_each_other_are_a_cycle() {
    let found = check_crate(&[
        ("lib.rs", "mod retry;\nmod controller;\n"),
        (
            "retry.rs",
            "use crate::controller::backoff;\npub fn drain() {}\n",
        ),
        (
            "controller.rs",
            "pub fn backoff() {}\nfn f() {\n    crate::retry::drain();\n}\n",
        ),
    ]);
    assert_eq!(
        found,
        ["cycle: demo::controller -> demo::retry -> demo::controller"]
    );
}

#[test]
fn a_cycle_through_three_siblings_deep_in_their_subtrees_is_found_at_their_level() {
    let found = check_crate(&[
        ("lib.rs", "mod sandbox;\n"),
        ("sandbox.rs", "mod decide;\nmod pod;\nmod status;\n"),
        (
            "sandbox/decide.rs",
            "use super::pod::build;\npub fn plan() {}\n",
        ),
        ("sandbox/pod.rs", "mod spec;\npub use spec::build;\n"),
        (
            "sandbox/pod/spec.rs",
            "use crate::sandbox::status::Status;\npub fn build() {}\n",
        ),
        (
            "sandbox/status.rs",
            "pub struct Status;\nfn f() {\n    super::decide::plan();\n}\n",
        ),
    ]);
    assert_eq!(
        found,
        [
            "cycle: demo::sandbox::decide -> demo::sandbox::pod -> demo::sandbox::status -> demo::sandbox::decide"
        ]
    );
}

#[test]
fn test_code_is_not_checked() {
    let found = check_crate(&[
        (
            "lib.rs",
            "mod a;\nmod b;\nfn helper() {}\n#[cfg(test)]\nmod tests;\n",
        ),
        ("tests.rs", "use crate::a::*;\n"),
        (
            "a.rs",
            "#[cfg(test)]\nuse super::helper;\n#[cfg(test)]\nmod tests {\n    use super::super::*;\n    use crate::b::g;\n}\npub fn f() {}\n",
        ),
        (
            "b.rs",
            "pub fn g() {}\n#[cfg(all(unix, test))]\nfn uses_a() {\n    crate::a::f();\n}\n",
        ),
    ]);
    assert_eq!(found, Vec::<String>::new());
}

#[test]
fn a_tree_built_top_down_passes() {
    let found = check_crate(&[
        (
            "lib.rs",
            "mod config;\nmod run;\npub use config::Config;\npub use run::run;\n",
        ),
        ("config.rs", "pub struct Config { pub workers: u16 }\n"),
        (
            "run.rs",
            "mod steps;\nuse crate::Config;\nuse anyhow::Context;\npub fn run(c: &Config) {\n    steps::one(c);\n    self::steps::two();\n    std::mem::drop(c);\n}\n",
        ),
        (
            "run/steps.rs",
            "use crate::config::Config;\npub fn one(_: &Config) {}\npub fn two() {\n    super::super::config::Config { workers: 1 };\n    format!(\"{}\", crate::config::Config { workers: 2 }.workers);\n}\n",
        ),
    ]);
    assert_eq!(found, Vec::<String>::new());
}

#[test]
fn the_allowlist_tolerates_listed_violations_and_refuses_new_and_stale_ones() {
    let listed = allowlist::parse("# comment\n\nknown\ngone\n");
    let found: BTreeSet<String> = ["known".to_owned(), "fresh".to_owned()].into();
    let verdict = allowlist::compare(&found, &listed);
    assert_eq!(
        verdict,
        allowlist::Verdict {
            tolerated: vec!["known".into()],
            new: vec!["fresh".into()],
            stale: vec!["gone".into()],
        }
    );
    assert!(!verdict.passes());
    let only_known: BTreeSet<String> = ["known".to_owned()].into();
    let listed = allowlist::parse("known\n");
    assert!(allowlist::compare(&only_known, &listed).passes());
}

#[test]
fn allowlist_entries_leave_out_the_line_number() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).expect("src");
    std::fs::write(src.join("lib.rs"), "mod a;\nfn helper() {}\n").expect("lib.rs");
    std::fs::write(src.join("a.rs"), "\n\nuse super::helper;\n").expect("a.rs");
    let findings =
        check(dir.path(), &[("demo".to_owned(), src.join("lib.rs"))]).expect("the check runs");
    assert_eq!(
        findings,
        [Finding {
            printed: "src/a.rs:3: demo::a imports super::helper defined in ancestor demo".into(),
            entry: "src/a.rs: demo::a imports super::helper defined in ancestor demo".into(),
        }]
    );
}
