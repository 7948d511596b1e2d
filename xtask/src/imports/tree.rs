//! A crate's module tree, read from its root file by following `mod` declarations the way rustc does
//! (`name.rs` or `name/mod.rs`, `#[path]`, inline modules). Test modules are not followed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::items::{self, Contents};

/// One module of a crate.
pub struct Module {
    /// Its path below the crate root (empty for the root).
    pub path: Vec<String>,
    /// The file its items are in.
    pub file: PathBuf,
    /// What it defines and references.
    pub contents: Contents,
    /// Its child modules, by name, as indices into [`Tree::modules`].
    pub children: BTreeMap<String, usize>,
    /// Its parent, as an index into [`Tree::modules`]; None for the root.
    pub parent: Option<usize>,
}

/// The modules of one crate target; the root is `modules[0]`.
pub struct Tree {
    /// The crate's name as code spells it (`agent_sandbox_kube`, `xtask`).
    pub name: String,
    /// Every module.
    pub modules: Vec<Module>,
}

impl Tree {
    /// Reads the crate whose root file is `root`.
    pub fn load(name: &str, root: &Path) -> anyhow::Result<Tree> {
        let mut tree = Tree {
            name: name.replace('-', "_"),
            modules: Vec::new(),
        };
        let dir = root.parent().context("a crate root has a directory")?;
        let items = parse(root)?;
        tree.add(
            None,
            Vec::new(),
            root.to_path_buf(),
            items,
            dir.to_path_buf(),
        )?;
        Ok(tree)
    }

    /// `crate_name::a::b`, how messages name a module.
    pub fn display(&self, module: usize) -> String {
        let mut parts = vec![self.name.clone()];
        parts.extend(self.modules[module].path.iter().cloned());
        parts.join("::")
    }

    /// Whether `ancestor` is `module` or one of its ancestors.
    pub fn contains(&self, ancestor: usize, module: usize) -> bool {
        let mut at = Some(module);
        while let Some(m) = at {
            if m == ancestor {
                return true;
            }
            at = self.modules[m].parent;
        }
        false
    }

    /// Adds a module whose items are `items` (in `file`) and, recursively, its children, which live in
    /// `child_dir`.
    fn add(
        &mut self,
        parent: Option<usize>,
        path: Vec<String>,
        file: PathBuf,
        items: Vec<syn::Item>,
        child_dir: PathBuf,
    ) -> anyhow::Result<usize> {
        let mut contents = items::read(items);
        let declared = std::mem::take(&mut contents.children);
        let index = self.modules.len();
        self.modules.push(Module {
            path: path.clone(),
            file: file.clone(),
            contents,
            children: BTreeMap::new(),
            parent,
        });
        for child in declared {
            let mut child_path = path.clone();
            child_path.push(child.name.clone());
            let child_index = match child.inline {
                Some(items) => {
                    let dir = child_dir.join(&child.name);
                    self.add(Some(index), child_path, file.clone(), items, dir)?
                }
                None => {
                    let (child_file, dir) = locate(&file, &child_dir, &child)?;
                    if child_file.file_name().is_some_and(|n| n == "tests.rs") {
                        continue;
                    }
                    let items = parse(&child_file)?;
                    self.add(Some(index), child_path, child_file, items, dir)?
                }
            };
            self.modules[index].children.insert(child.name, child_index);
        }
        Ok(index)
    }
}

/// The file of a child module declared in `file` and the directory of its own children.
fn locate(
    file: &Path,
    child_dir: &Path,
    child: &items::ChildDecl,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    if let Some(relative) = &child.path_attr {
        // A `#[path]` file is relative to the declaring file's directory and owns its directory.
        let base = file.parent().context("a source file has a directory")?;
        let found = base.join(relative);
        let dir = found.parent().map(Path::to_path_buf).unwrap_or_default();
        return Ok((found, dir));
    }
    let flat = child_dir.join(format!("{}.rs", child.name));
    if flat.is_file() {
        return Ok((flat, child_dir.join(&child.name)));
    }
    let nested = child_dir.join(&child.name).join("mod.rs");
    if nested.is_file() {
        return Ok((nested, child_dir.join(&child.name)));
    }
    bail!(
        "{}: module {} has neither {} nor {}",
        file.display(),
        child.name,
        flat.display(),
        nested.display()
    )
}

fn parse(file: &Path) -> anyhow::Result<Vec<syn::Item>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let parsed = syn::parse_file(&text).with_context(|| format!("parsing {}", file.display()))?;
    Ok(parsed.items)
}
