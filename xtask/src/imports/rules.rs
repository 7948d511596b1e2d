//! The two rules, on one crate's module tree.
//!
//! Every path a module mentions is resolved to the module that *defines* what it names, following
//! `use` re-exports and glob imports; paths that leave the crate (or that only a macro could explain)
//! resolve to nothing and are not judged.
//!
//! * **Upward import**: a module names an item (not a module) defined in one of its ancestors, such
//!   as `use crate::Error` with `Error` in `lib.rs`, or `super::helper()` with `helper` in the
//!   parent's file. Children are built from their parent's view, never the other way round.
//! * **Cycle**: among the children of one module, `a` uses `b` when anything in `a`'s subtree names
//!   something in `b`'s; a cycle of that relation (`a -> b -> a`, or longer) is reported once.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::tree::Tree;

/// How deep re-exports may chain before a path is given up on (they cannot loop in valid Rust, but a
/// checker should not trust that).
const MAX_HOPS: usize = 32;

/// What a path names: a module, or an item defined in a module.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    module: usize,
    item: Option<String>,
}

/// An upward import.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Upward {
    /// The importing module.
    pub module: usize,
    /// The line of the path.
    pub line: usize,
    /// The path as written.
    pub path: String,
    /// The ancestor that defines what it names.
    pub ancestor: usize,
}

/// Every upward import in the crate, in module and line order.
pub fn upward_imports(tree: &Tree) -> Vec<Upward> {
    let resolver = Resolver { tree };
    let mut found = BTreeSet::new();
    for (module, m) in tree.modules.iter().enumerate() {
        for reference in &m.contents.references {
            let segments = &reference.segments;
            if !reference.from_use && resolver.names_imported_item(module, segments) {
                continue;
            }
            let ancestor = if segments.last().is_some_and(|s| s == "*") {
                resolver.glob_from_ancestor(module, &segments[..segments.len() - 1])
            } else {
                resolver
                    .resolve(module, segments, 0)
                    .filter(|t| t.item.is_some() && t.module != module)
                    .map(|t| t.module)
                    .filter(|&defining| tree.contains(defining, module))
            };
            if let Some(ancestor) = ancestor {
                found.insert(Upward {
                    module,
                    line: reference.line,
                    path: segments.join("::"),
                    ancestor,
                });
            }
        }
    }
    found.into_iter().collect()
}

/// Cycles among sibling modules: for every use between two siblings that lies on a cycle, the
/// shortest cycle through it, each written from its first module by name with that module repeated
/// at the end; sorted and without repeats, so the output is stable and shrinks edge by edge.
pub fn cycles(tree: &Tree) -> Vec<Vec<String>> {
    let mut found = BTreeSet::new();
    for edges in sibling_uses(tree).values() {
        for component in strongly_connected(edges) {
            let members: BTreeSet<usize> = component.iter().copied().collect();
            for &from in &component {
                for &to in edges.get(&from).into_iter().flatten() {
                    if let Some(cycle) = shortest_cycle(edges, &members, from, to) {
                        found.insert(from_first_by_name(tree, &cycle));
                    }
                }
            }
        }
    }
    found.into_iter().collect()
}

/// For each module, which of its children use which others (anything in one's subtree naming
/// something in the other's).
fn sibling_uses(tree: &Tree) -> BTreeMap<usize, BTreeMap<usize, BTreeSet<usize>>> {
    let resolver = Resolver { tree };
    let mut uses: BTreeMap<usize, BTreeMap<usize, BTreeSet<usize>>> = BTreeMap::new();
    for (module, m) in tree.modules.iter().enumerate() {
        for reference in &m.contents.references {
            let segments = &reference.segments;
            let path = match segments.last() {
                Some(s) if s == "*" => &segments[..segments.len() - 1],
                _ => &segments[..],
            };
            let Some(target) = resolver.resolve(module, path, 0) else {
                continue;
            };
            if let Some((parent, from, to)) = sibling_edge(tree, module, target.module) {
                uses.entry(parent)
                    .or_default()
                    .entry(from)
                    .or_default()
                    .insert(to);
            }
        }
    }
    uses
}

/// For a reference from `from` to something in `to`: their closest common ancestor and its two
/// different children that hold them, if they are in different children's subtrees.
fn sibling_edge(tree: &Tree, from: usize, to: usize) -> Option<(usize, usize, usize)> {
    let chain = |mut m: usize| {
        let mut up = vec![m];
        while let Some(p) = tree.modules[m].parent {
            up.push(p);
            m = p;
        }
        up.reverse();
        up
    };
    let (a, b) = (chain(from), chain(to));
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    match (a.get(common), b.get(common)) {
        (Some(&x), Some(&y)) => Some((a[common - 1], x, y)),
        _ => None,
    }
}

/// Tarjan's strongly connected components of a small graph.
fn strongly_connected(edges: &BTreeMap<usize, BTreeSet<usize>>) -> Vec<Vec<usize>> {
    struct State<'a> {
        edges: &'a BTreeMap<usize, BTreeSet<usize>>,
        index: BTreeMap<usize, usize>,
        low: BTreeMap<usize, usize>,
        stack: Vec<usize>,
        on_stack: BTreeSet<usize>,
        components: Vec<Vec<usize>>,
    }
    fn visit(s: &mut State, v: usize) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        let next: Vec<usize> = s.edges.get(&v).into_iter().flatten().copied().collect();
        for w in next {
            if !s.index.contains_key(&w) {
                visit(s, w);
                let low = s.low[&v].min(s.low[&w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(&w) {
                let low = s.low[&v].min(s.index[&w]);
                s.low.insert(v, low);
            }
        }
        if s.low[&v] == s.index[&v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(&w);
                component.push(w);
                if w == v {
                    break;
                }
            }
            s.components.push(component);
        }
    }
    let mut state = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        components: Vec::new(),
    };
    for &v in edges.keys() {
        if !state.index.contains_key(&v) {
            visit(&mut state, v);
        }
    }
    state.components
}

/// The shortest cycle that goes `from -> to` and back within `members`, as `[from, to, …, from]`.
fn shortest_cycle(
    edges: &BTreeMap<usize, BTreeSet<usize>>,
    members: &BTreeSet<usize>,
    from: usize,
    to: usize,
) -> Option<Vec<usize>> {
    if !members.contains(&to) {
        return None;
    }
    let mut came_from: BTreeMap<usize, usize> = BTreeMap::new();
    let mut queue = VecDeque::from([to]);
    while let Some(v) = queue.pop_front() {
        if v == from {
            let mut back = vec![from];
            let mut at = from;
            while let Some(&p) = came_from.get(&at) {
                back.push(p);
                at = p;
            }
            back.push(from);
            back.reverse();
            return Some(back);
        }
        for &w in edges.get(&v).into_iter().flatten() {
            if members.contains(&w) && w != to && !came_from.contains_key(&w) {
                came_from.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    None
}

/// A cycle `[a, b, …, a]` by module name, turned to start (and end) at its first name.
fn from_first_by_name(tree: &Tree, cycle: &[usize]) -> Vec<String> {
    let names: Vec<String> = cycle[..cycle.len() - 1]
        .iter()
        .map(|&m| tree.display(m))
        .collect();
    let first = (0..names.len())
        .min_by_key(|&i| &names[i])
        .unwrap_or_default();
    let mut turned: Vec<String> = names[first..]
        .iter()
        .chain(&names[..first])
        .cloned()
        .collect();
    turned.push(turned[0].clone());
    turned
}

struct Resolver<'a> {
    tree: &'a Tree,
}

impl Resolver<'_> {
    /// Whether a code path starts with a name imported as an item (`Foo::new()` after `use super::Foo`):
    /// its `use` line is what gets reported.
    fn names_imported_item(&self, module: usize, segments: &[String]) -> bool {
        let Some(imported) = self.tree.modules[module].contents.imports.get(&segments[0]) else {
            return false;
        };
        self.resolve(module, imported, 0)
            .is_some_and(|t| t.item.is_some())
    }

    /// The ancestor a glob import `use <prefix>::*` reads from, when it defines items.
    fn glob_from_ancestor(&self, module: usize, prefix: &[String]) -> Option<usize> {
        let target = self.resolve(module, prefix, 0)?;
        let from = &self.tree.modules[target.module];
        (target.item.is_none()
            && target.module != module
            && self.tree.contains(target.module, module)
            && !from.contents.items.is_empty())
        .then_some(target.module)
    }

    /// What `segments`, written in `module`, names.
    fn resolve(&self, module: usize, segments: &[String], hops: usize) -> Option<Target> {
        if hops > MAX_HOPS {
            return None;
        }
        let modules = &self.tree.modules;
        let (first, rest) = segments.split_first()?;
        match first.as_str() {
            "crate" => self.walk(0, rest, hops),
            "super" => self.walk(modules[module].parent?, rest, hops),
            "self" => self.walk(module, rest, hops),
            "Self" => None,
            name => {
                let here = &modules[module];
                if here.children.contains_key(name) || here.contents.items.contains(name) {
                    self.walk(module, segments, hops)
                } else if let Some(imported) = here.contents.imports.get(name) {
                    let mut full = imported.clone();
                    full.extend(rest.iter().cloned());
                    self.resolve(module, &full, hops + 1)
                } else {
                    None
                }
            }
        }
    }

    /// Follows `segments` down from module `at`.
    fn walk(&self, mut at: usize, segments: &[String], hops: usize) -> Option<Target> {
        let modules = &self.tree.modules;
        for (i, segment) in segments.iter().enumerate() {
            let last = i + 1 == segments.len();
            let here = &modules[at];
            match segment.as_str() {
                "super" => at = here.parent?,
                "self" => {}
                name => {
                    if let Some(&child) = here.children.get(name) {
                        at = child;
                        continue;
                    }
                    if here.contents.items.contains(name) {
                        return Some(Target {
                            module: at,
                            item: Some(name.to_owned()),
                        });
                    }
                    let target = self.through_imports(at, name, hops)?;
                    match target.item {
                        // A path through an item goes on into its variants or associated items.
                        Some(_) => return Some(target),
                        None if last => return Some(target),
                        None => at = target.module,
                    }
                }
            }
        }
        Some(Target {
            module: at,
            item: None,
        })
    }

    /// What `name` stands for in module `at` by way of its imports (its own or a glob's).
    fn through_imports(&self, at: usize, name: &str, hops: usize) -> Option<Target> {
        let contents = &self.tree.modules[at].contents;
        if let Some(imported) = contents.imports.get(name) {
            return self.resolve(at, imported, hops + 1);
        }
        contents.globs.iter().find_map(|glob| {
            let mut full = glob.clone();
            full.push(name.to_owned());
            self.resolve(at, &full, hops + 1)
        })
    }
}
