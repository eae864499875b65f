//! The code identity of built-in stage kinds, fixed when the binary was built (see build.rs):
//! for each kind, a digest of the files its module graph reaches from the kind's stage module and
//! the worker, of Cargo.lock and Cargo.toml, and of the compiler version.

use crate::kinds::StageKind;

include!(concat!(env!("OUT_DIR"), "/code_identity.rs"));

/// The digest of the sources that define how stages of `kind` behave.
pub fn builtin_code_identity(kind: StageKind) -> &'static str {
    KIND_IDENTITY
        .iter()
        .find(|(k, _)| *k == kind.name())
        .map(|(_, id)| *id)
        .expect("build.rs lists every stage kind")
}

/// The files whose content makes up the code identity of `kind` (with the compiler version, which
/// is hashed too): workspace-relative, sorted. An edit to any of them makes every stored artifact
/// of that kind stale; an edit anywhere else leaves them fresh.
pub fn builtin_code_files(kind: StageKind) -> &'static [&'static str] {
    KIND_FILES
        .iter()
        .find(|(k, _)| *k == kind.name())
        .map(|(_, files)| *files)
        .expect("build.rs lists every stage kind")
}

// The scanner build.rs uses, compiled again for the tests, which re-scan the sources with it.
#[cfg(test)]
#[allow(dead_code)]
mod module_graph {
    include!("../../build/module_graph.rs");
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::fs;
    use std::path::Path;

    use super::module_graph::{Crate, KINDS, Tok, mod_path, scan_source, show, tokenize};
    use super::*;

    const MODEL_KINDS: &[StageKind] = &[StageKind::Pretrain, StageKind::Train, StageKind::Predict];

    fn root() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR"))
    }

    fn sources() -> Crate {
        Crate::load(root()).expect("the module graph of the sources loads")
    }

    fn files(kind: StageKind) -> BTreeSet<&'static str> {
        builtin_code_files(kind).iter().copied().collect()
    }

    fn file_of(krate: &Crate, module: &str) -> String {
        krate
            .modules
            .get(&mod_path(module))
            .unwrap_or_else(|| panic!("no module `{module}` in the crate"))
            .file
            .clone()
    }

    /// The file of the one module that defines the type or trait `name`.
    fn defining_file(krate: &Crate, name: &str) -> String {
        let found: Vec<&str> = krate
            .modules
            .values()
            .filter(|m| m.defs.contains(name))
            .map(|m| m.file.as_str())
            .collect();
        assert_eq!(found.len(), 1, "`{name}` is defined in {found:?}");
        found[0].to_string()
    }

    #[test]
    fn every_stage_kind_has_a_code_identity() {
        for kind in StageKind::ALL {
            assert!(
                KIND_IDENTITY.iter().any(|(k, _)| *k == kind.name()),
                "build.rs has no code identity for `{}`",
                kind.name()
            );
            assert!(!builtin_code_files(*kind).is_empty());
        }
        let names: Vec<&str> = StageKind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(
            KINDS,
            names.as_slice(),
            "build/module_graph.rs lists other kinds"
        );
    }

    #[test]
    fn every_kind_covers_the_worker_the_task_files_and_the_pinned_crates() {
        let krate = sources();
        for kind in StageKind::ALL {
            let have = files(*kind);
            let stage = format!("stages::{}", kind.name());
            for module in ["worker", "task", "stages", "stages::config", stage.as_str()] {
                let f = file_of(&krate, module);
                assert!(
                    have.contains(f.as_str()),
                    "`{}` does not cover `{f}`",
                    kind.name()
                );
            }
            for f in ["src/worker.rs", "src/task.rs", "Cargo.lock", "Cargo.toml"] {
                assert!(have.contains(f), "`{}` does not cover `{f}`", kind.name());
            }
        }
    }

    #[test]
    fn model_kinds_cover_the_backend_and_the_statistics_errors() {
        let krate = sources();
        let backend = defining_file(&krate, "Backend");
        let stats_error = defining_file(&krate, "StatsError");
        assert_eq!(stats_error, "src/stats/error.rs");
        for kind in MODEL_KINDS {
            let have = files(*kind);
            for f in [backend.as_str(), stats_error.as_str(), "src/stats/auc.rs"] {
                assert!(have.contains(f), "`{}` does not cover `{f}`", kind.name());
            }
        }
    }

    #[test]
    fn only_the_report_kind_reaches_the_report_code_or_its_templates() {
        let krate = sources();
        for kind in StageKind::ALL {
            if *kind == StageKind::Report {
                continue;
            }
            for f in builtin_code_files(*kind) {
                if !(f.starts_with("src/report/") || f.starts_with("templates/")) {
                    continue;
                }
                let how = krate
                    .modules
                    .values()
                    .find(|m| m.file == *f)
                    .map(|m| krate.explain(kind.name(), &m.path))
                    .unwrap_or_default();
                panic!(
                    "`{}` covers `{f}`: editing the report would recompute it. Reached by: {how}",
                    kind.name()
                );
            }
        }
        let report = files(StageKind::Report);
        let mut templates = BTreeSet::new();
        super::module_graph::files_under(root(), "templates", &mut templates).unwrap();
        assert!(!templates.is_empty());
        for t in &templates {
            assert!(report.contains(t.as_str()), "`report` does not cover `{t}`");
        }
        assert!(report.contains("src/report/render.rs"));
    }

    #[test]
    fn the_generated_lists_match_a_fresh_scan_of_the_sources() {
        let krate = sources();
        for kind in StageKind::ALL {
            let fresh = krate.kind_files(root(), kind.name()).unwrap();
            assert_eq!(
                builtin_code_files(*kind),
                fresh.as_slice(),
                "`{}`: the files build.rs hashed differ from the module graph of the sources",
                kind.name()
            );
        }
    }

    /// The real check: every module a listed file's code names (by the same scan) is listed too,
    /// every file it embeds is listed, and no unlisted module holds an impl the listed code can use.
    #[test]
    fn every_kind_lists_everything_its_files_reference() {
        let krate = sources();
        for kind in StageKind::ALL {
            let name = kind.name();
            let have = files(*kind);
            let reached = krate.reach(name).unwrap();
            let mut defs = BTreeSet::new();
            for (path, m) in &krate.modules {
                if !have.contains(m.file.as_str()) {
                    continue;
                }
                // An inline module not reached is part of a listed file but not of the kind.
                let inline = path
                    .split_last()
                    .is_some_and(|(_, parent)| krate.modules[parent].file == m.file);
                if inline && !reached.contains_key(path) {
                    continue;
                }
                defs.extend(m.defs.iter().cloned());
                for e in krate.edges(path, name) {
                    let to = &krate.modules[&e.to].file;
                    assert!(
                        have.contains(to.as_str()),
                        "`{name}` lists `{}` but not `{to}`, which it reaches by `{}` in `{}`",
                        m.file,
                        e.why,
                        show(path)
                    );
                }
                for inc in &m.includes {
                    assert!(
                        have.contains(inc.as_str()),
                        "`{name}`: `{}` embeds `{inc}`, which is not listed",
                        m.file
                    );
                }
            }
            for (path, m) in &krate.modules {
                if have.contains(m.file.as_str()) {
                    continue;
                }
                for header in &m.impls {
                    assert!(
                        !krate.impl_applies(path, header, &defs),
                        "`{name}` does not list `{}`, whose `impl {}` applies to types it uses",
                        m.file,
                        header.join(" ")
                    );
                }
            }
        }
    }

    fn scan(src: &str) -> Vec<super::module_graph::Module> {
        scan_source(src, "src/a/b.rs", &mod_path("a::b"), "StageKind").unwrap()
    }

    fn segs(path: &str) -> Vec<String> {
        mod_path(path)
    }

    #[test]
    fn the_scan_ignores_comments_literals_and_test_code() {
        let src = r###"
            // use crate::report::LineComment;
            /* crate::report::Block /* nested */ crate::report::StillComment */
            /// Doc: [`crate::report::Doc`]
            const S: &str = "crate::report::InString";
            const R: &str = r#"crate::report::"Raw"#;
            const C: char = '"';
            const B: &[u8] = b"crate::report::Bytes";
            fn f<'a>(x: &'a str) -> &'a str { crate::stats::auc::roc_auc(); x }
            #[cfg(test)]
            mod tests { use crate::report::TestOnly; }
            #[cfg(test)]
            #[allow(dead_code)]
            mod more_tests;
            #[cfg(not(test))]
            fn kept() { crate::kept::k(); }
            struct Fields {
                #[cfg(test)]
                probe: u8,
                field: crate::kept::Field,
            }
        "###;
        let mods = scan(src);
        assert_eq!(mods.len(), 1, "the test module is skipped");
        let m = &mods[0];
        let refs: Vec<&Vec<String>> = m.refs.iter().map(|r| &r.segs).collect();
        assert_eq!(
            refs,
            [
                &segs("crate::stats::auc::roc_auc"),
                &segs("crate::kept::k"),
                &segs("crate::kept::Field")
            ]
        );
        assert!(m.uses.is_empty() && m.children.is_empty());
        assert_eq!(
            tokenize("r#type 'x' '\\'' 'lt 1.5"),
            [
                Tok::Ident("type".into()),
                Tok::Char,
                Tok::Char,
                Tok::Lifetime,
                Tok::Num
            ]
        );
    }

    #[test]
    fn the_scan_reads_grouped_nested_and_renamed_use_trees() {
        let src = "
            use crate::{a, b::{c, d as e}, f::*};
            use super::task::{self, TaskFile};
            pub use config::ConfigError;
            pub(crate) use std::fs::{self, File};
            use x as _;
        ";
        let m = &scan(src)[0];
        let leaves: Vec<(String, Option<&str>, bool)> = m
            .uses
            .iter()
            .map(|u| (u.segs.join("::"), u.alias.as_deref(), u.glob))
            .collect();
        let want: Vec<(String, Option<&str>, bool)> = [
            ("crate::a", Some("a"), false),
            ("crate::b::c", Some("c"), false),
            ("crate::b::d", Some("e"), false),
            ("crate::f", None, true),
            ("super::task", Some("task"), false),
            ("super::task::TaskFile", Some("TaskFile"), false),
            ("config::ConfigError", Some("ConfigError"), false),
            ("std::fs", Some("fs"), false),
            ("std::fs::File", Some("File"), false),
            ("x", None, false),
        ]
        .into_iter()
        .map(|(p, a, g)| (p.to_string(), a, g))
        .collect();
        assert_eq!(leaves, want);
    }

    #[test]
    fn the_scan_reads_paths_in_code_attribute_strings_inline_modules_and_match_arms() {
        let src = r#"
            #[serde(with = "crate::codec::hex", rename_all = "snake_case")]
            struct S;
            fn g() {
                let v = <T as crate::t::Trait>::f();
                super::super::up::k();
                Vec::<u8>::new();
            }
            pub mod inner {
                fn h() { super::sibling::s(); }
            }
            fn dispatch(kind: StageKind) {
                match kind {
                    StageKind::Pretrain | StageKind::Train => pretrain::run(),
                    StageKind::Report => { report::run(); report::again(); }
                }
                after::all();
            }
            impl<B: Backend, const N: usize> crate::x::Show for Wrapper<B> where B: Clone {}
            fn takes(x: impl Into<String>) {}
        "#;
        let mods = scan(src);
        assert_eq!(mods.len(), 2);
        let outer = &mods[0];
        assert_eq!(outer.path, segs("a::b"));
        assert!(outer.children.contains("inner"));
        let refs: Vec<(String, Option<Vec<String>>, bool)> = outer
            .refs
            .iter()
            .map(|r| (r.segs.join("::"), r.guard.clone(), r.from_attr_string))
            .collect();
        let arm = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        for want in [
            ("crate::codec::hex".to_string(), None, true),
            ("snake_case".to_string(), None, true),
            ("crate::t::Trait".to_string(), None, false),
            ("super::super::up::k".to_string(), None, false),
            (
                "pretrain::run".to_string(),
                arm(&["Pretrain", "Train"]),
                false,
            ),
            ("report::run".to_string(), arm(&["Report"]), false),
            ("report::again".to_string(), arm(&["Report"]), false),
            ("after::all".to_string(), None, false),
            ("crate::x::Show".to_string(), None, false),
        ] {
            assert!(refs.contains(&want), "{want:?} not in {refs:?}");
        }
        assert_eq!(outer.defs, BTreeSet::from(["S".to_string()]));
        assert_eq!(
            outer.impls,
            [["Show".to_string(), "Wrapper".to_string()]],
            "generic parameters and `-> impl`/`x: impl` are not impl blocks' names"
        );
        let inner = &mods[1];
        assert_eq!(inner.path, segs("a::b::inner"));
        assert_eq!(inner.file, "src/a/b.rs");
        assert_eq!(inner.refs[0].segs, segs("super::sibling::s"));
    }

    #[test]
    fn the_scan_resolves_embedded_files_and_refuses_what_it_cannot_follow() {
        let src = r#"
            const T: &str = include_str!("../../templates/report.html");
            const G: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/x.json"));
            include!(concat!(env!("OUT_DIR"), "/generated.rs"));
        "#;
        assert_eq!(
            scan(src)[0].includes,
            ["templates/report.html", "tests/golden/x.json"]
        );
        for bad in [
            "#[path = \"other.rs\"] mod m;",
            "include!(\"other.rs\");",
            "const X: &str = include_str!(env!(\"SOMEWHERE\"));",
        ] {
            assert!(
                scan_source(bad, "src/a/b.rs", &segs("a::b"), "StageKind").is_err(),
                "`{bad}` is accepted"
            );
        }
    }

    /// The rules end to end, on a small crate: paths, re-exports, `mod` children, the crate root,
    /// the dispatcher's arms, embedded files, impls and test code.
    #[test]
    fn the_graph_rules_keep_kinds_apart_and_miss_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let files: &[(&str, &str)] = &[
            ("Cargo.lock", ""),
            ("Cargo.toml", ""),
            ("templates/page.html", "<p>{{ x }}</p>"),
            (
                "src/lib.rs",
                "pub mod facade; pub mod helpers; pub mod kinds; pub mod report; pub mod stages;
                 pub mod store; pub mod task; pub mod widgets; pub mod worker;
                 pub use helpers::Error;",
            ),
            ("src/task.rs", "pub struct TaskFile;"),
            ("src/kinds.rs", "pub enum StageKind { Pretrain, Report }"),
            (
                "src/worker.rs",
                "use crate::task::TaskFile;
                 pub fn run(t: &TaskFile, k: crate::kinds::StageKind) { crate::stages::run(k); }",
            ),
            (
                "src/stages/mod.rs",
                "pub mod config; pub mod pretrain; pub mod report;
                 use crate::kinds::StageKind;
                 pub fn run(kind: StageKind) {
                     match kind {
                         StageKind::Pretrain => pretrain::run(),
                         StageKind::Report => { report::run(); }
                     }
                 }",
            ),
            ("src/stages/config.rs", "pub fn typed() {}"),
            (
                "src/stages/pretrain.rs",
                "use crate::helpers::{self, shapes::Shape};
                 // crate::report::render(), in a comment
                 pub fn run() -> Result<(), crate::Error> {
                     helpers::fit(); Shape.area(); crate::facade::Widget::new(); Ok(())
                 }
                 #[cfg(test)]
                 mod tests { use crate::report::*; }",
            ),
            (
                "src/stages/report.rs",
                "pub fn run() { crate::report::render(); }",
            ),
            (
                "src/helpers/mod.rs",
                "mod fit; pub mod shapes; pub use fit::fit; pub struct Error;",
            ),
            ("src/helpers/fit.rs", "pub fn fit() {}"),
            ("src/helpers/shapes.rs", "pub struct Shape;"),
            (
                "src/store.rs",
                "impl crate::helpers::shapes::Shape { pub fn area(&self) {} }",
            ),
            ("src/facade.rs", "pub use crate::widgets::Widget;"),
            (
                "src/widgets.rs",
                "pub struct Widget; impl Widget { pub fn new() {} }",
            ),
            (
                "src/report/mod.rs",
                "pub struct ReportError;
                 pub fn render() -> &'static str { include_str!(\"../../templates/page.html\") }
                 impl From<ReportError> for crate::helpers::Error {
                     fn from(_: ReportError) -> Self { crate::helpers::Error }
                 }",
            ),
        ];
        for (path, text) in files {
            let p = dir.path().join(path);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        }
        let krate = Crate::load(dir.path()).unwrap();
        let list = |kind: &str| krate.kind_files(dir.path(), kind).unwrap();
        assert_eq!(
            list("pretrain"),
            [
                "Cargo.lock",
                "Cargo.toml",
                "src/facade.rs",
                "src/helpers/fit.rs",
                "src/helpers/mod.rs",
                "src/helpers/shapes.rs",
                "src/kinds.rs",
                "src/lib.rs",
                "src/stages/config.rs",
                "src/stages/mod.rs",
                "src/stages/pretrain.rs",
                "src/store.rs",
                "src/task.rs",
                "src/widgets.rs",
                "src/worker.rs",
            ]
        );
        assert_eq!(
            list("report"),
            [
                "Cargo.lock",
                "Cargo.toml",
                "src/helpers/fit.rs",
                "src/helpers/mod.rs",
                "src/helpers/shapes.rs",
                "src/kinds.rs",
                "src/report/mod.rs",
                "src/stages/config.rs",
                "src/stages/mod.rs",
                "src/stages/report.rs",
                "src/store.rs",
                "src/task.rs",
                "src/worker.rs",
                "templates/page.html",
            ]
        );
    }
}
