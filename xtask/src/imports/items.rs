//! What one module's source says, read with `syn`: the names it defines, the names its `use` lines bring
//! into scope, the child modules it declares and every path it mentions (with its line). Code behind
//! `#[cfg(test)]` is left out: tests may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};

use proc_macro2::{TokenStream, TokenTree};
use syn::punctuated::Punctuated;
use syn::visit::Visit;
use syn::{Attribute, Expr, Item, Token, UseTree};

/// A path a module mentions, as written (`super::helper`, `crate::a::B`, `layout::Layout`).
#[derive(Debug, Clone)]
pub struct Reference {
    /// Its segments; a glob import ends with `*`.
    pub segments: Vec<String>,
    /// The line it starts on.
    pub line: usize,
    /// Whether it is a `use` line (otherwise a path in code, checked only when it reaches through an
    /// imported module: an imported item is reported at its `use`).
    pub from_use: bool,
}

/// A child module declared with `mod name …`.
pub struct ChildDecl {
    /// Its name.
    pub name: String,
    /// Its items when declared inline (`mod name { … }`); None when it lives in a file.
    pub inline: Option<Vec<Item>>,
    /// The `#[path = "…"]` attribute, if any.
    pub path_attr: Option<String>,
}

/// Everything the checker needs from one module's items.
#[derive(Default)]
pub struct Contents {
    /// Names of the items defined here, other than modules (functions, types, traits, constants, …).
    pub items: BTreeSet<String>,
    /// Names brought into scope by `use`, each with the path it stands for.
    pub imports: BTreeMap<String, Vec<String>>,
    /// The paths of glob imports (`use a::b::*` gives `a::b`).
    pub globs: Vec<Vec<String>>,
    /// Every path mentioned, in order.
    pub references: Vec<Reference>,
    /// Child modules, test modules excluded.
    pub children: Vec<ChildDecl>,
}

/// Reads a module's items.
pub fn read(items: Vec<Item>) -> Contents {
    let mut contents = Contents::default();
    for item in items {
        if test_only(item_attrs(&item)) {
            continue;
        }
        match item {
            Item::Mod(module) => {
                let name = module.ident.to_string();
                if name != "tests" {
                    contents.children.push(ChildDecl {
                        name,
                        path_attr: path_attr(&module.attrs),
                        inline: module.content.map(|(_, items)| items),
                    });
                }
            }
            Item::Use(decl) => {
                let line = decl.use_token.span.start().line;
                let mut flat = Vec::new();
                flatten(&decl.tree, Vec::new(), &mut flat);
                for (segments, name) in flat {
                    contents.note_use(segments, name, line);
                }
            }
            other => {
                if let Some(name) = defined_name(&other) {
                    contents.items.insert(name);
                }
                let mut paths = Paths::default();
                paths.visit_item(&other);
                contents.references.extend(paths.found);
            }
        }
    }
    contents
}

impl Contents {
    fn note_use(&mut self, segments: Vec<String>, name: Option<String>, line: usize) {
        match name.as_deref() {
            None => self.globs.push(segments.clone()),
            Some("_") => {}
            Some(name) => {
                self.imports.insert(name.to_owned(), segments.clone());
            }
        }
        let mut written = segments;
        if name.is_none() {
            written.push("*".to_owned());
        }
        self.references.push(Reference {
            segments: written,
            line,
            from_use: true,
        });
    }
}

/// Every leaf of a use tree: its full path and the name it binds (None for a glob).
fn flatten(tree: &UseTree, prefix: Vec<String>, out: &mut Vec<(Vec<String>, Option<String>)>) {
    let extend = |ident: &syn::Ident| {
        let mut path = prefix.clone();
        path.push(ident.to_string());
        path
    };
    match tree {
        UseTree::Path(p) => flatten(&p.tree, extend(&p.ident), out),
        // `use a::{self}` binds `a` itself.
        UseTree::Name(n) if n.ident == "self" => {
            let name = prefix.last().cloned();
            out.push((prefix, name));
        }
        UseTree::Name(n) => out.push((extend(&n.ident), Some(n.ident.to_string()))),
        UseTree::Rename(r) if r.ident == "self" => out.push((prefix, Some(r.rename.to_string()))),
        UseTree::Rename(r) => out.push((extend(&r.ident), Some(r.rename.to_string()))),
        UseTree::Glob(_) => out.push((prefix, None)),
        UseTree::Group(g) => {
            for tree in &g.items {
                flatten(tree, prefix.clone(), out);
            }
        }
    }
}

/// The name an item defines in its module's namespace, if any.
fn defined_name(item: &Item) -> Option<String> {
    let ident = match item {
        Item::Const(i) => &i.ident,
        Item::Enum(i) => &i.ident,
        Item::ExternCrate(i) => i.rename.as_ref().map_or(&i.ident, |(_, r)| r),
        Item::Fn(i) => &i.sig.ident,
        Item::Macro(i) => i.ident.as_ref()?,
        Item::Static(i) => &i.ident,
        Item::Struct(i) => &i.ident,
        Item::Trait(i) => &i.ident,
        Item::TraitAlias(i) => &i.ident,
        Item::Type(i) => &i.ident,
        Item::Union(i) => &i.ident,
        _ => return None,
    };
    Some(ident.to_string())
}

fn item_attrs(item: &Item) -> &[Attribute] {
    match item {
        Item::Const(i) => &i.attrs,
        Item::Enum(i) => &i.attrs,
        Item::ExternCrate(i) => &i.attrs,
        Item::Fn(i) => &i.attrs,
        Item::ForeignMod(i) => &i.attrs,
        Item::Impl(i) => &i.attrs,
        Item::Macro(i) => &i.attrs,
        Item::Mod(i) => &i.attrs,
        Item::Static(i) => &i.attrs,
        Item::Struct(i) => &i.attrs,
        Item::Trait(i) => &i.attrs,
        Item::TraitAlias(i) => &i.attrs,
        Item::Type(i) => &i.attrs,
        Item::Union(i) => &i.attrs,
        Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

/// Whether the attributes compile the item only for tests: `#[cfg(test)]` or `#[cfg(all(…, test, …))]`.
pub fn test_only(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path().is_ident("cfg")
            && attr
                .meta
                .require_list()
                .is_ok_and(|list| predicate_needs_test(&list.tokens))
    })
}

fn predicate_needs_test(tokens: &TokenStream) -> bool {
    let trees: Vec<TokenTree> = tokens.clone().into_iter().collect();
    match trees.as_slice() {
        [TokenTree::Ident(ident)] => ident == "test",
        [TokenTree::Ident(all), TokenTree::Group(group)] if all == "all" => {
            let mut term = TokenStream::new();
            let mut terms = Vec::new();
            for tree in group.stream() {
                match tree {
                    TokenTree::Punct(p) if p.as_char() == ',' => {
                        terms.push(std::mem::take(&mut term));
                    }
                    other => term.extend([other]),
                }
            }
            terms.push(term);
            terms.iter().any(predicate_needs_test)
        }
        _ => false,
    }
}

fn path_attr(attrs: &[Attribute]) -> Option<String> {
    attrs.iter().find_map(|attr| {
        let value = &attr.meta.require_name_value().ok()?.value;
        match value {
            Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) if attr.path().is_ident("path") => Some(s.value()),
            _ => None,
        }
    })
}

/// Collects the paths of two or more segments in code, and the `use` lines inside function bodies.
#[derive(Default)]
struct Paths {
    found: Vec<Reference>,
}

impl<'ast> Visit<'ast> for Paths {
    fn visit_path(&mut self, path: &'ast syn::Path) {
        if path.segments.len() >= 2 {
            self.found.push(Reference {
                segments: path.segments.iter().map(|s| s.ident.to_string()).collect(),
                line: path.segments[0].ident.span().start().line,
                from_use: false,
            });
        }
        syn::visit::visit_path(self, path);
    }

    fn visit_item_use(&mut self, decl: &'ast syn::ItemUse) {
        let line = decl.use_token.span.start().line;
        let mut flat = Vec::new();
        flatten(&decl.tree, Vec::new(), &mut flat);
        for (mut segments, name) in flat {
            if name.is_none() {
                segments.push("*".to_owned());
            }
            self.found.push(Reference {
                segments,
                line,
                from_use: true,
            });
        }
    }

    // A module nested in a function is not part of this one.
    fn visit_item_mod(&mut self, _: &'ast syn::ItemMod) {}

    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        if !test_only(&item.attrs) {
            syn::visit::visit_item_fn(self, item);
        }
    }

    fn visit_impl_item_fn(&mut self, item: &'ast syn::ImplItemFn) {
        if !test_only(&item.attrs) {
            syn::visit::visit_impl_item_fn(self, item);
        }
    }

    // Macro bodies are tokens to syn; most (`format!`, `assert!`, `vec!`) are expressions separated by
    // commas, so read them as such when they parse and skip them when they do not.
    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        syn::visit::visit_macro(self, mac);
        if let Ok(exprs) = mac.parse_body_with(Punctuated::<Expr, Token![,]>::parse_terminated) {
            for expr in &exprs {
                self.visit_expr(expr);
            }
        }
    }
}
