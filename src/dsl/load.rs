//! Reading and validating an experiment file: syntax, schema, names, paths, placeholders, the
//! stage graph. Every rejection is a [`DslError`] that points at the file, line, column and key
//! path; nothing here writes anything.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path};

use indexmap::IndexMap;
use serde_json::Value as Json;
use serde_yaml::Value as Yaml;

use super::error::DslError;
use super::expand::{self, Axis, BaseStage, DepRef, Gather};
use super::experiment::{ExecutorKind, Experiment, Resources};
use super::schema::{ExperimentFile, ResourcesSpec, StageSpec};
use super::span::{Pos, SpanIndex, join_path};
use super::template;
use crate::kinds::KindSchemas;
use crate::kinds::StageKind;

/// Loads `file` (as named by the user) against the workspace root `workspace`.
/// `schemas` knows every built-in kind's config (`crate::stages::Builtin`).
pub fn load(
    file: &Path,
    workspace: &Path,
    schemas: &dyn KindSchemas,
) -> Result<Experiment, DslError> {
    let workspace = workspace
        .canonicalize()
        .map_err(|e| DslError::new(workspace, format!("cannot open the workspace: {e}")))?;
    let abs = if file.is_absolute() {
        file.to_path_buf()
    } else {
        workspace.join(file)
    };
    let text = std::fs::read_to_string(&abs).map_err(|e| {
        let what = if e.kind() == std::io::ErrorKind::NotFound {
            "experiment file not found".to_string()
        } else {
            format!("cannot read the experiment file: {e}")
        };
        DslError::new(file, what)
    })?;
    parse(file, &text, &workspace, schemas)
}

/// Validates the text of an experiment file named `file`.
pub fn parse(
    file: &Path,
    text: &str,
    workspace: &Path,
    schemas: &dyn KindSchemas,
) -> Result<Experiment, DslError> {
    let spans = SpanIndex::build(text).map_err(|e| {
        DslError::new(file, e.message)
            .at(Some(e.pos), text)
            .key(e.key_path.unwrap_or_default())
    })?;
    if spans.empty {
        return Err(DslError::new(file, "the experiment file is empty").help(
            "start from experiments/quickstart.yaml: it needs at least `experiment:` and `stages:`",
        ));
    }
    let raw: ExperimentFile = serde_yaml::from_str(text).map_err(|e| {
        let pos = e.location().map(|l| super::span::Pos {
            line: l.line(),
            col: l.column(),
        });
        let msg = e.to_string();
        // serde_yaml appends " at line L column C"; the position is printed in front instead.
        let msg = match msg.rfind(" at line ") {
            Some(i) => msg[..i].to_string(),
            None => msg,
        };
        DslError::new(file, plain_words(&msg)).at(pos, text)
    })?;
    let ctx = Ctx {
        file,
        text,
        spans: &spans,
        workspace,
        schemas,
    };
    ctx.experiment(raw)
}

struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
    spans: &'a SpanIndex,
    workspace: &'a Path,
    schemas: &'a dyn KindSchemas,
}

fn segs(path: &[&str]) -> Vec<String> {
    path.iter().map(|s| s.to_string()).collect()
}

impl Ctx<'_> {
    /// An error at the key `path`.
    fn err(&self, path: &[&str], msg: impl Into<String>) -> DslError {
        let segs = segs(path);
        DslError::new(self.file, msg)
            .at(self.spans.key_pos(&segs), self.text)
            .key(join_path(path))
    }

    /// An error at the value of `path`.
    fn err_value(&self, path: &[&str], msg: impl Into<String>) -> DslError {
        let segs = segs(path);
        DslError::new(self.file, msg)
            .at(self.spans.value_pos(&segs), self.text)
            .key(join_path(path))
    }

    fn experiment(&self, raw: ExperimentFile) -> Result<Experiment, DslError> {
        if !valid_name(&raw.experiment, true) {
            return Err(self.err_value(
                &["experiment"],
                format!(
                    "invalid experiment name `{}`: use letters, digits, `.`, `_` and `-` (it names a folder under runs/)",
                    raw.experiment
                ),
            ));
        }
        if let Some(seeds) = &raw.seeds {
            if seeds.is_empty() {
                return Err(self.err_value(
                    &["seeds"],
                    "`seeds` is empty: list at least one seed or remove the key",
                ));
            }
            let mut seen = std::collections::HashSet::new();
            for (i, s) in seeds.iter().enumerate() {
                if !seen.insert(s) {
                    let idx = format!("[{i}]");
                    return Err(
                        self.err_value(&["seeds", &idx], format!("seed {s} is listed twice"))
                    );
                }
            }
        }
        if raw.stages.is_empty() {
            return Err(self.err(&["stages"], "the experiment declares no stages"));
        }
        if raw.seeds.is_none()
            && let Some((name, _)) = raw.stages.iter().find(|(_, s)| s.replicate)
        {
            return Err(self.err_value(
                &["stages", name, "replicate"],
                format!("stage `{name}` has `replicate: true` but the experiment declares no `seeds:` to replicate over"),
            ));
        }
        let defaults = raw.defaults.clone().unwrap_or_default();
        // Output names of every stage first: references are checked against them.
        let mut outs_by_stage: IndexMap<String, Vec<String>> = IndexMap::new();
        for (name, spec) in &raw.stages {
            let names = match StageKind::parse(&spec.kind) {
                Some(kind) if kind.is_builtin() => {
                    let config = self.builtin_config(name, kind, spec)?;
                    self.schemas.outputs(kind, &config).into_keys().collect()
                }
                _ => spec.outs.keys().cloned().collect(),
            };
            outs_by_stage.insert(name.clone(), names);
        }
        let mut bases = Vec::with_capacity(raw.stages.len());
        for (name, spec) in &raw.stages {
            bases.push(self.stage(name, spec, &defaults, &outs_by_stage)?);
        }
        let order = self.topo_order(&bases)?;
        let axes = self.sweep_axes(&raw, &bases)?;
        let seed = raw.seed.unwrap_or(0);
        let mut stages = expand::expand(&bases, &order, &axes, raw.seeds.as_deref(), seed)
            .map_err(|e| self.err(&["sweep"], e.to_string()))?;
        self.check_evaluate_gathers(&stages)?;
        for stage in stages
            .iter_mut()
            .filter(|s| s.kind.is_builtin() && !s.coords.is_empty())
        {
            stage.config = self
                .schemas
                .resolve_config(stage.kind, &stage.config)
                .map_err(|e| {
                    let axis = axes
                        .iter()
                        .find(|a| a.section == "config" && bases[a.stage].name == stage.base)
                        .map_or_else(|| "sweep".to_string(), |a| a.id.clone());
                    self.err(
                        &["sweep", &axis],
                        format!(
                            "variant `{}`: config {}: {}",
                            stage.name,
                            join_path(&e.path),
                            e.message
                        ),
                    )
                })?;
        }
        Ok(Experiment {
            name: raw.experiment,
            description: raw.description,
            file: self.file.to_path_buf(),
            workspace: self.workspace.to_path_buf(),
            seed,
            stages,
            executor: raw.executor.unwrap_or(ExecutorKind::Local),
            slurm: raw.slurm.clone().unwrap_or_default(),
            backend: raw.backend.unwrap_or_default(),
            paper: match &raw.paper {
                Some(v) => self.json(&["paper".to_string()], v)?,
                None => Json::Null,
            },
        })
    }

    fn stage(
        &self,
        name: &str,
        spec: &StageSpec,
        defaults: &super::schema::Defaults,
        all: &IndexMap<String, Vec<String>>,
    ) -> Result<BaseStage, DslError> {
        fn at<'a>(name: &'a str, k: &'a str) -> Vec<&'a str> {
            if k.is_empty() {
                vec!["stages", name]
            } else {
                vec!["stages", name, k]
            }
        }
        let at = |k: &'static str| at(name, k);
        if !valid_name(name, false) {
            return Err(self.err(
                &at(""),
                format!("invalid stage name `{name}`: use letters, digits, `_` and `-`"),
            ));
        }
        let kind = StageKind::parse(&spec.kind).ok_or_else(|| {
            let known: Vec<_> = StageKind::ALL.iter().map(|k| k.name()).collect();
            self.err_value(
                &at("kind"),
                format!(
                    "unknown stage kind `{}` (known: {})",
                    spec.kind,
                    known.join(", ")
                ),
            )
        })?;
        if kind.is_builtin() {
            for (field, set) in [
                ("cmd", spec.cmd.is_some()),
                ("outs", !spec.outs.is_empty()),
                ("code", !spec.code.is_empty()),
                ("params", !spec.params.is_empty()),
            ] {
                if set {
                    return Err(self.err(
                        &at(field),
                        format!(
                            "a `{}` stage takes its settings in `config:`; `{field}` is for `command` stages",
                            kind.name()
                        ),
                    ));
                }
            }
        } else {
            match spec.cmd.as_deref() {
                None => return Err(self.err(&at(""), "a `command` stage needs a `cmd`")),
                Some(c) if c.trim().is_empty() => {
                    return Err(self
                        .err_value(&at("cmd"), "`cmd` is empty: write the shell command to run"));
                }
                Some(_) => {}
            }
            if spec.config.is_some() {
                return Err(self.err(
                    &at("config"),
                    "a `command` stage takes `params`, not `config`",
                ));
            }
            if spec.outs.is_empty() {
                return Err(self.err(
                    &at(""),
                    "a `command` stage must declare at least one output in `outs`: its outputs are what is cached",
                ));
            }
        }
        if let Some(want) = self.schemas.dep_spec(kind) {
            for dep in spec.deps.keys() {
                if !want.accepts(dep) {
                    let mut known: Vec<String> =
                        want.required.iter().map(|d| format!("`{d}`")).collect();
                    known.extend(want.optional.iter().map(|d| format!("`{d}` (optional)")));
                    let known = if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    };
                    return Err(self.err(
                        &["stages", name, "deps", dep.as_str()],
                        format!(
                            "a `{}` stage has no input `{dep}` (its inputs: {known})",
                            kind.name()
                        ),
                    ));
                }
            }
            if let Some(missing) = want.required.iter().find(|d| !spec.deps.contains_key(**d)) {
                return Err(self.err(
                    &at(""),
                    format!(
                        "a `{}` stage needs the input `{missing}` in `deps`",
                        kind.name()
                    ),
                ));
            }
        }

        let mut deps = BTreeMap::new();
        for (dep, target) in &spec.deps {
            let path = ["stages", name, "deps", dep.as_str()];
            if !valid_ident(dep) {
                return Err(self.err(
                    &path,
                    format!("invalid dep name `{dep}`: use letters, digits and `_`"),
                ));
            }
            deps.insert(dep.clone(), self.dep(&path, target, all)?);
        }
        let mut code = Vec::new();
        for (i, c) in spec.code.iter().enumerate() {
            let idx = format!("[{i}]");
            code.push(self.workspace_path(&["stages", name, "code", &idx], c, "code path")?);
        }
        let mut outs: BTreeMap<String, String> = BTreeMap::new();
        for (out, rel) in &spec.outs {
            let path = ["stages", name, "outs", out.as_str()];
            if !valid_ident(out) {
                return Err(self.err(
                    &path,
                    format!("invalid output name `{out}`: use letters, digits and `_`"),
                ));
            }
            let norm = normalize_out(rel)
                .map_err(|why| self.err_value(&path, format!("output path `{rel}` {why}")))?;
            if let Some((other, _)) = outs.iter().find(|(_, p)| **p == norm) {
                return Err(self.err_value(
                    &path,
                    format!("output path `{rel}` is also declared by output `{other}`"),
                ));
            }
            let inside =
                |a: &str, b: &str| b.strip_prefix(a).is_some_and(|r: &str| r.starts_with('/'));
            let overlap = outs
                .iter()
                .find(|(_, p): &(&String, &String)| inside(p, &norm) || inside(&norm, p));
            if let Some((other, p)) = overlap {
                return Err(self.err_value(
                    &path,
                    format!("output path `{rel}` and output `{other}` (`{p}`) overlap: one is inside the other"),
                ));
            }
            outs.insert(out.clone(), norm);
        }
        let mut params = BTreeMap::new();
        for (p, v) in &spec.params {
            let path = ["stages", name, "params", p.as_str()];
            if !valid_ident(p) {
                return Err(self.err(
                    &path,
                    format!("invalid param name `{p}`: use letters, digits and `_`"),
                ));
            }
            params.insert(p.clone(), self.json(&segs(&path), v)?);
        }
        let config = if kind.is_builtin() {
            let config = self.builtin_config(name, kind, spec)?;
            outs = self.schemas.outputs(kind, &config);
            config
        } else {
            Json::Null
        };
        let resources = self.resources(name, spec.resources.clone(), defaults.resources.clone())?;
        let retries = spec.retries.or(defaults.retries).unwrap_or(0);
        if let Some(cmd) = &spec.cmd {
            let names = template::Names {
                deps: deps.keys().cloned().collect(),
                outs: outs.keys().cloned().collect(),
                params: params.keys().cloned().collect(),
            };
            template::check(cmd, &names).map_err(|(placeholder, msg)| {
                let segs = segs(&["stages", name, "cmd"]);
                let pos = self
                    .spans
                    .value_pos(&segs)
                    .and_then(|p| find_after(self.text, p, &placeholder))
                    .or_else(|| self.spans.value_pos(&segs));
                DslError::new(self.file, msg)
                    .at(pos, self.text)
                    .key(join_path(&segs))
            })?;
        }
        Ok(BaseStage {
            name: name.to_string(),
            kind,
            cmd: spec.cmd.clone(),
            deps,
            code,
            outs,
            params,
            config,
            resources,
            retries,
            replicate: spec.replicate,
            executor: spec.executor,
        })
    }

    /// An `evaluate` stage reads one score per model, seed and patient, so a dep that gathers
    /// (`stage:NAME[*]/OUT`) may only gather replicates: variants that differ in `seed` alone.
    /// One that gathers across a sweep axis would meet each patient twice at run time; say so
    /// now, with the axis and how to fan out over it instead.
    fn check_evaluate_gathers(&self, stages: &[crate::dsl::Stage]) -> Result<(), DslError> {
        for stage in stages.iter().filter(|s| s.kind == StageKind::Evaluate) {
            for (dep, d) in &stage.deps {
                let crate::dsl::Dep::Stage {
                    stages: idx,
                    gather: true,
                    ..
                } = d
                else {
                    continue;
                };
                let Some(&first) = idx.first() else { continue };
                for &i in &idx[1..] {
                    let differs = stages[i].coords.iter().find(|(k, v)| {
                        k != "seed"
                            && stages[first]
                                .coords
                                .iter()
                                .find(|(k2, _)| k2 == k)
                                .is_some_and(|(_, v2)| v2 != v)
                    });
                    if let Some((axis, _)) = differs {
                        return Err(self.err_value(
                            &["stages", &stage.base, "deps", dep],
                            format!(
                                "`{}` gathers `{}` across the sweep axis `{axis}` (`{}` and `{}`): \
                                 an evaluation takes one score per model, seed and patient, so it \
                                 may gather seeds only. Write `stage:{}[seed=*]/…` to gather \
                                 the seeds and fan out over `{axis}`",
                                stage.base,
                                stages[first].base,
                                stages[first].name,
                                stages[i].name,
                                stages[first].base
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// A built-in stage's config, converted to JSON and resolved against its kind's schema.
    fn builtin_config(
        &self,
        name: &str,
        kind: StageKind,
        spec: &StageSpec,
    ) -> Result<Json, DslError> {
        let path = vec!["stages".to_string(), name.to_string(), "config".to_string()];
        let raw = match &spec.config {
            Some(v) => self.json(&path, v)?,
            None => Json::Null,
        };
        let deps: Vec<&str> = spec.deps.keys().map(String::as_str).collect();
        if let Some(e) = self.schemas.unused_key(kind, &raw, &deps) {
            let mut full = path.clone();
            full.extend(e.path.iter().cloned());
            let p: Vec<&str> = full.iter().map(String::as_str).collect();
            return Err(self.err(&p, format!("`{}` {}", join_path(&e.path), e.message)));
        }
        self.schemas.resolve_config(kind, &raw).map_err(|e| {
            let mut full = path.clone();
            full.extend(e.path.iter().cloned());
            let p: Vec<&str> = full.iter().map(String::as_str).collect();
            let msg = plain_words(&e.message);
            if e.message.starts_with("unknown field") {
                self.err(&p, msg)
            } else {
                self.err_value(&p, msg)
            }
        })
    }

    fn resources(
        &self,
        stage: &str,
        own: Option<ResourcesSpec>,
        default: Option<ResourcesSpec>,
    ) -> Result<Resources, DslError> {
        let own = own.unwrap_or_default();
        let def = default.unwrap_or_default();
        let time_from_defaults = own.time.is_none();
        let r = Resources {
            cpus: own.cpus.or(def.cpus).unwrap_or(1),
            gpus: own.gpus.or(def.gpus).unwrap_or(0),
            mem_mb: own.mem_mb.or(def.mem_mb),
            time: own.time.or(def.time),
        };
        if r.cpus == 0 {
            return Err(self.err_value(
                &["stages", stage, "resources", "cpus"],
                "`cpus` must be at least 1",
            ));
        }
        if let Some(t) = &r.time
            && let Err(why) = super::experiment::parse_time_limit(t)
        {
            let path: &[&str] = if time_from_defaults {
                &["defaults", "resources", "time"]
            } else {
                &["stages", stage, "resources", "time"]
            };
            return Err(self.err_value(path, why));
        }
        if r.mem_mb == Some(0) {
            return Err(self.err_value(
                &["stages", stage, "resources", "mem_mb"],
                "`mem_mb` must be at least 1 (leave it out for no limit)",
            ));
        }
        Ok(r)
    }

    fn dep(
        &self,
        path: &[&str],
        target: &str,
        all: &IndexMap<String, Vec<String>>,
    ) -> Result<DepRef, DslError> {
        let Some(rest) = target.strip_prefix("stage:") else {
            let norm = self.workspace_path(path, target, "dep")?;
            if norm == "runs" || norm.starts_with("runs/") {
                return Err(self.err_value(
                    path,
                    format!(
                        "dep `{target}` is inside `runs/`, where the store and the run records \
                         live: read another stage's output with `stage:NAME/OUT`"
                    ),
                ));
            }
            if let Err(why) = check_dep_tree(&self.workspace.join(&norm)) {
                return Err(self.err_value(path, format!("dep `{target}`: {why}")));
            }
            return Ok(DepRef::Path(norm));
        };
        let Some((stage, out)) = rest.split_once('/') else {
            return Err(self.err_value(
                path,
                format!("`{target}` is not a stage reference: write `stage:NAME/OUT` (or `stage:NAME[*]/OUT` to gather every variant, `stage:NAME[seed=*]/OUT` to gather its seeds)"),
            ));
        };
        let (stage, gather) = if let Some(s) = stage.strip_suffix("[*]") {
            (s, Gather::All)
        } else if let Some(s) = stage.strip_suffix("[seed=*]") {
            (s, Gather::Seeds)
        } else {
            (stage, Gather::No)
        };
        let Some(up) = all.get(stage) else {
            let known: Vec<_> = all.keys().map(String::as_str).collect();
            return Err(self.err_value(
                path,
                format!(
                    "`{target}` refers to a missing stage `{stage}` (stages: {})",
                    known.join(", ")
                ),
            ));
        };
        if !up.iter().any(|o| o == out) {
            let known: Vec<_> = up.iter().map(String::as_str).collect();
            return Err(self.err_value(
                path,
                format!(
                    "`{target}`: stage `{stage}` has no output `{out}` (outputs: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        }
        Ok(DepRef::Stage {
            stage: stage.to_string(),
            out: out.to_string(),
            gather,
        })
    }

    /// Validates a workspace-relative path: relative, inside the workspace (also after
    /// following links), existing. Returns it normalized.
    fn workspace_path(&self, path: &[&str], rel: &str, what: &str) -> Result<String, DslError> {
        let norm = normalize_relative(rel)
            .map_err(|why| self.err_value(path, format!("{what} `{rel}` {why}")))?;
        if norm == "." {
            return Err(self.err_value(
                path,
                format!("{what} `{rel}` is the whole workspace (runs and store included): name the files or folders the stage reads"),
            ));
        }
        let abs = self.workspace.join(&norm);
        match abs.canonicalize() {
            Ok(real) if real.starts_with(self.workspace) => Ok(norm),
            Ok(real) => Err(self.err_value(
                path,
                format!(
                    "{what} `{rel}` escapes the workspace through a link (it resolves to `{}`)",
                    real.display()
                ),
            )),
            Err(_) => Err(self.err_value(
                path,
                format!(
                    "{what} `{rel}` does not exist in the workspace `{}`",
                    self.workspace.display()
                ),
            )),
        }
    }

    fn json(&self, path: &[String], v: &Yaml) -> Result<Json, DslError> {
        let at = |msg: String| {
            let p: Vec<&str> = path.iter().map(String::as_str).collect();
            self.err_value(&p, msg)
        };
        Ok(match v {
            Yaml::Null => Json::Null,
            Yaml::Bool(b) => Json::Bool(*b),
            Yaml::Number(n) => {
                if let Some(i) = n.as_u64() {
                    Json::from(i)
                } else if let Some(i) = n.as_i64() {
                    Json::from(i)
                } else {
                    let f = n.as_f64().unwrap_or(f64::NAN);
                    if !f.is_finite() {
                        return Err(at(format!(
                            "`{n}` is not a finite number: NaN and infinities are not allowed in an experiment"
                        )));
                    }
                    serde_json::Number::from_f64(f)
                        .map(Json::Number)
                        .ok_or_else(|| at(format!("`{n}` is not a finite number")))?
                }
            }
            Yaml::String(s) => Json::String(s.clone()),
            Yaml::Sequence(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let mut p = path.to_vec();
                    p.push(format!("[{i}]"));
                    out.push(self.json(&p, item)?);
                }
                Json::Array(out)
            }
            Yaml::Mapping(m) => {
                let mut out = serde_json::Map::new();
                for (k, item) in m {
                    let Yaml::String(k) = k else {
                        return Err(at(format!(
                            "map keys must be strings, found `{}`",
                            yaml_text(k)
                        )));
                    };
                    let mut p = path.to_vec();
                    p.push(k.clone());
                    out.insert(k.clone(), self.json(&p, item)?);
                }
                Json::Object(out)
            }
            Yaml::Tagged(t) => {
                return Err(at(format!(
                    "YAML tags such as `{}` are not supported",
                    t.tag
                )));
            }
        })
    }

    /// Kahn's algorithm over declared stages, declaration order breaking ties; a cycle is
    /// reported as a path `a → b → a`.
    fn topo_order(&self, bases: &[BaseStage]) -> Result<Vec<usize>, DslError> {
        let index: HashMap<&str, usize> = bases
            .iter()
            .enumerate()
            .map(|(i, b)| (b.name.as_str(), i))
            .collect();
        let ups: Vec<Vec<usize>> = bases
            .iter()
            .map(|b| {
                let mut v: Vec<usize> = b
                    .upstream_names()
                    .filter_map(|n| index.get(n).copied())
                    .collect();
                v.sort_unstable();
                v.dedup();
                v
            })
            .collect();
        let mut indegree: Vec<usize> = ups.iter().map(Vec::len).collect();
        let mut downs = vec![Vec::new(); bases.len()];
        for (i, u) in ups.iter().enumerate() {
            for &j in u {
                downs[j].push(i);
            }
        }
        let mut ready: std::collections::BTreeSet<usize> =
            (0..bases.len()).filter(|&i| indegree[i] == 0).collect();
        let mut order = Vec::with_capacity(bases.len());
        while let Some(i) = ready.pop_first() {
            order.push(i);
            for &d in &downs[i] {
                indegree[d] -= 1;
                if indegree[d] == 0 {
                    ready.insert(d);
                }
            }
        }
        if order.len() == bases.len() {
            return Ok(order);
        }
        // Walk upstream edges from a stage still blocked until a stage repeats.
        let blocked: Vec<usize> = (0..bases.len()).filter(|&i| indegree[i] > 0).collect();
        let mut path = vec![blocked[0]];
        loop {
            let last = *path.last().expect("path starts non-empty");
            let next = ups[last]
                .iter()
                .copied()
                .find(|u| indegree[*u] > 0)
                .expect("a blocked stage has a blocked upstream");
            if let Some(start) = path.iter().position(|&p| p == next) {
                let mut cycle: Vec<&str> = path[start..]
                    .iter()
                    .rev()
                    .map(|&i| bases[i].name.as_str())
                    .collect();
                cycle.push(cycle[0]);
                let first = bases[path[start]].name.as_str();
                return Err(self.err(
                    &["stages", first, "deps"],
                    format!("the stages form a cycle: {}", cycle.join(" → ")),
                ));
            }
            path.push(next);
        }
    }

    fn sweep_axes(&self, raw: &ExperimentFile, bases: &[BaseStage]) -> Result<Vec<Axis>, DslError> {
        let Some(sweep) = &raw.sweep else {
            return Ok(Vec::new());
        };
        let mut axes = Vec::new();
        let mut group = 0usize;
        for (key, value) in sweep {
            if key == ZIP {
                let groups: Vec<(Vec<String>, &Yaml)> = match value {
                    Yaml::Mapping(_) => vec![(vec!["sweep".into(), ZIP.into()], value)],
                    Yaml::Sequence(list) if !list.is_empty() => list
                        .iter()
                        .enumerate()
                        .map(|(i, g)| (vec!["sweep".into(), ZIP.into(), format!("[{i}]")], g))
                        .collect(),
                    _ => {
                        return Err(self.err_value(
                            &["sweep", ZIP],
                            "`zip` must be a map of sweep keys to equally long lists of values \
                             (or a list of such maps)",
                        ));
                    }
                };
                for (at, g) in groups {
                    let at_ref: Vec<&str> = at.iter().map(String::as_str).collect();
                    let Yaml::Mapping(members) = g else {
                        return Err(self.err_value(
                            &at_ref,
                            "a `zip` group must be a map of sweep keys to lists of values",
                        ));
                    };
                    if members.len() < 2 {
                        return Err(self.err(
                            &at_ref,
                            "a `zip` group moves two or more sweep keys together; sweep a single \
                             key outside `zip`",
                        ));
                    }
                    let first = axes.len();
                    for (k, v) in members {
                        let Some(k) = k.as_str() else {
                            return Err(self.err_value(&at_ref, "sweep keys must be text"));
                        };
                        let mut p = at.clone();
                        p.push(k.to_string());
                        axes.push(self.sweep_axis(&p, k, v, bases, group)?);
                    }
                    let zipped = &axes[first..];
                    let lead = &zipped[0];
                    for a in &zipped[1..] {
                        let mut p = at.clone();
                        p.push(a.id.clone());
                        let p: Vec<&str> = p.iter().map(String::as_str).collect();
                        if a.stage != lead.stage {
                            return Err(self.err(
                                &p,
                                format!(
                                    "zipped sweep keys must belong to one stage: `{}` is of stage \
                                     `{}`, `{}` of `{}`",
                                    a.id, bases[a.stage].name, lead.id, bases[lead.stage].name
                                ),
                            ));
                        }
                        if a.values.len() != lead.values.len() {
                            return Err(self.err_value(
                                &p,
                                format!(
                                    "zipped sweep keys must list as many values each: `{}` lists \
                                     {}, `{}` lists {}",
                                    a.id,
                                    a.values.len(),
                                    lead.id,
                                    lead.values.len()
                                ),
                            ));
                        }
                    }
                    group += 1;
                }
            } else {
                axes.push(self.sweep_axis(
                    &["sweep".to_string(), key.clone()],
                    key,
                    value,
                    bases,
                    group,
                )?);
                group += 1;
            }
        }
        let mut ids = std::collections::HashSet::new();
        for a in &axes {
            if !ids.insert(a.id.as_str()) {
                return Err(self.err(
                    &["sweep", ZIP],
                    format!(
                        "sweep key `{}` is swept twice (inside and outside `zip`)",
                        a.id
                    ),
                ));
            }
        }
        Ok(axes)
    }

    /// One sweep key (`STAGE.params.NAME` or `STAGE.config.PATH`) and its values, at `path`.
    fn sweep_axis(
        &self,
        path: &[String],
        key: &str,
        values: &Yaml,
        bases: &[BaseStage],
        group: usize,
    ) -> Result<Axis, DslError> {
        let path_ref: Vec<&str> = path.iter().map(String::as_str).collect();
        let parts: Vec<&str> = key.split('.').collect();
        if parts.len() < 3 || !matches!(parts[1], "params" | "config") {
            return Err(self.err(
                &path_ref,
                format!("sweep key `{key}` must be `STAGE.params.NAME` or `STAGE.config.PATH`"),
            ));
        }
        let Some(stage) = bases.iter().position(|b| b.name == parts[0]) else {
            return Err(self.err(
                &path_ref,
                format!("sweep key `{key}` names a missing stage `{}`", parts[0]),
            ));
        };
        let base = &bases[stage];
        let root = if parts[1] == "params" {
            Json::Object(base.params.clone().into_iter().collect())
        } else {
            base.config.clone()
        };
        let mut cur = &root;
        for p in &parts[2..] {
            match cur.get(p) {
                Some(v) => cur = v,
                None => {
                    return Err(self.err(
                        &path_ref,
                        format!(
                            "sweep key `{key}`: stage `{}` declares no `{}` to sweep (declare a default value first)",
                            parts[0],
                            parts[1..].join(".")
                        ),
                    ));
                }
            }
        }
        if parts[1] == "config" && base.kind.is_builtin() {
            let deps: Vec<&str> = base.deps.keys().map(String::as_str).collect();
            let probe = serde_json::json!({ parts[2]: Json::Null });
            if let Some(e) = self.schemas.unused_key(base.kind, &probe, &deps) {
                return Err(self.err(
                    &path_ref,
                    format!("sweep key `{key}`: `{}` {}", parts[2], e.message),
                ));
            }
        }
        let Yaml::Sequence(values) = values else {
            return Err(self.err_value(
                &path_ref,
                format!("sweep `{key}` must be a list of values, such as `[0.1, 0.5]`"),
            ));
        };
        if values.is_empty() {
            return Err(self.err_value(&path_ref, format!("sweep `{key}` lists no values")));
        }
        let mut vals = Vec::with_capacity(values.len());
        // Values already listed, as text; numbers by value, so `1` and `1.0` are one value.
        let mut seen = std::collections::HashSet::with_capacity(values.len());
        for (i, v) in values.iter().enumerate() {
            let mut p = path.to_vec();
            p.push(format!("[{i}]"));
            let j = self.json(&p, v)?;
            let canonical = match j.as_f64() {
                Some(f) if j.is_number() => format!("n{}", f.to_bits()),
                _ => j.to_string(),
            };
            if !seen.insert(canonical) {
                let p: Vec<&str> = p.iter().map(String::as_str).collect();
                return Err(self.err_value(&p, format!("sweep `{key}` lists `{j}` twice")));
            }
            vals.push(j);
        }
        Ok(Axis {
            stage,
            id: key.to_string(),
            label: parts[parts.len() - 1].to_string(),
            section: parts[1].to_string(),
            path: parts[2..].iter().map(|s| s.to_string()).collect(),
            values: vals,
            group,
        })
    }
}

/// The `sweep:` entry whose keys move together.
const ZIP: &str = "zip";

/// serde's messages name Rust types; say what the user has to write instead.
fn plain_words(msg: &str) -> String {
    const WORDS: &[(&str, &str)] = &[
        (
            "struct ExperimentFile",
            "a map with `experiment:` and `stages:`",
        ),
        (
            "struct StageSpec",
            "a map describing a stage (`kind:`, `cmd:`, …)",
        ),
        ("struct ResourcesSpec", "a map such as `{cpus: 1, gpus: 0}`"),
        (
            "struct Defaults",
            "a map such as `{resources: {cpus: 1}, retries: 0}`",
        ),
        ("expected u64", "expected a whole number ≥ 0"),
        ("expected u32", "expected a whole number ≥ 0"),
        (
            "expected any YAML value",
            "expected a number that fits in 64 bits",
        ),
        ("invalid type: integer `-", "invalid value: integer `-"),
    ];
    let mut out = msg.to_string();
    for (from, to) in WORDS {
        out = out.replace(from, to);
    }
    out
}

/// The position of `needle` at or after `from` in `text` (to point at a token inside a value).
fn find_after(text: &str, from: Pos, needle: &str) -> Option<Pos> {
    let start: usize = text
        .split_inclusive('\n')
        .take(from.line.saturating_sub(1))
        .map(str::len)
        .sum::<usize>()
        + from.col.saturating_sub(1);
    let at = start + text.get(start..)?.find(needle)?;
    let line = text[..at].matches('\n').count() + 1;
    let col = at - text[..at].rfind('\n').map_or(0, |i| i + 1) + 1;
    Some(Pos { line, col })
}

fn yaml_text(v: &Yaml) -> String {
    serde_yaml::to_string(v)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Whether `s` is a valid experiment name (as `experiment:` requires): readers of untrusted
/// documents (bundles, locks, manifests) check names with it before using them.
pub fn valid_experiment_name(s: &str) -> bool {
    valid_name(s, true)
}

/// Experiment names may contain dots; stage names may not (dots separate sweep paths).
fn valid_name(s: &str, allow_dot: bool) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || (allow_dot && c == '.'))
}

/// A dep folder holds only plain files and folders: a link inside it (even one that stays
/// inside) would make its digest depend on what the link points to, and a device or a pipe has
/// no content to hash. Refused here, at validation, with the first offender's path.
fn check_dep_tree(root: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(root).map_err(|e| format!("cannot read it: {e}"))?;
    if meta.is_file() {
        return Ok(());
    }
    if !meta.is_dir() {
        return Err("is neither a file nor a folder".to_string());
    }
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries =
            std::fs::read_dir(&dir).map_err(|e| format!("cannot list `{}`: {e}", dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("cannot list `{}`: {e}", dir.display()))?;
            let p = entry.path();
            let rel = p.strip_prefix(root).unwrap_or(&p).display().to_string();
            let t = entry
                .file_type()
                .map_err(|e| format!("cannot read `{rel}`: {e}"))?;
            if t.is_symlink() {
                return Err(format!(
                    "`{rel}` inside it is a symbolic link: a dep folder may hold only files and \
                     folders (copy the target in, or name it as a dep of its own)"
                ));
            } else if t.is_dir() {
                pending.push(p);
            } else if !t.is_file() {
                return Err(format!(
                    "`{rel}` inside it is neither a file nor a folder (a device, socket or pipe)"
                ));
            }
        }
    }
    Ok(())
}

/// Names used inside `{…}` placeholders.
fn valid_ident(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A relative path with `..` allowed only while it stays inside the root.
fn normalize_relative(rel: &str) -> Result<String, &'static str> {
    if rel.trim().is_empty() {
        return Err("is empty");
    }
    let p = Path::new(rel);
    let mut parts: Vec<String> = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                if parts.pop().is_none() {
                    return Err("escapes the workspace: paths must stay inside it");
                }
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err("is absolute: write it relative to the workspace");
            }
        }
    }
    if parts.is_empty() {
        return Ok(".".to_string());
    }
    Ok(parts.join("/"))
}

/// An output path: relative to the stage's output directory, never leaving it.
fn normalize_out(rel: &str) -> Result<String, &'static str> {
    if Path::new(rel)
        .components()
        .any(|c| matches!(c, Component::ParentDir))
    {
        return Err("escapes the stage's output directory: `..` is not allowed in outputs");
    }
    let norm = normalize_relative(rel).map_err(|e| {
        if e.starts_with("is absolute") {
            "is absolute: outputs are relative to the stage's output directory"
        } else {
            e
        }
    })?;
    if norm == "." {
        return Err("names the output directory itself: name a file or folder inside it");
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_normalized_and_confined() {
        assert_eq!(normalize_relative("a/./b/../c").unwrap(), "a/c");
        assert!(normalize_relative("../x").is_err());
        assert!(normalize_relative("a/../../x").is_err());
        assert!(normalize_relative("/etc/passwd").is_err());
        assert!(normalize_out("x/../y").is_err());
        assert!(normalize_out(".").is_err());
        assert_eq!(normalize_out("sub/t.csv").unwrap(), "sub/t.csv");
    }

    #[test]
    fn names() {
        assert!(valid_name("paper-v1.2", true));
        assert!(!valid_name("a.b", false));
        assert!(!valid_name("", false));
        assert!(!valid_name("a b", true));
        assert!(valid_ident("raw_2"));
        assert!(!valid_ident("raw-2"));
    }
}
