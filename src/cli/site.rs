//! `orchestrate kit`, `validate` and `import-site`: external validation without moving patient
//! data. The lab packs a run's models into a kit; another hospital validates them on its own
//! cohort (predict + evaluate, in an isolated workspace and store, with this same binary's
//! stage code) and sends back only results; the lab imports them into the run, after checking
//! that they were computed with the run's models and code. Documents: `crate::verify::site`;
//! archives: `crate::verify::archive`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::Value;

use super::lock::read_manifest;
use super::{Context, print_json, read_store};
use crate::cli::error::Error;
use crate::cohort::Cohort;
use crate::exec::manifest::{self, RunManifest, RunStatus, StageEntry};
use crate::exit;
use crate::fingerprint::{self, NoCache};
use crate::kinds::StageKind;
use crate::plan::{KeyDoc, KeyInput, StageInput};
use crate::site::{
    CohortShape, KIT_FORMAT, KIT_KIND, KitDoc, KitModel, RESULTS_KIND, SITE_FORMAT, SiteCohort,
    SiteDoc, SiteModel, valid_name,
};
use crate::stages::pretrain::read_cohort;
use crate::store::{StageRecord, Store};
use crate::verify::archive::{read_archive, write_archive};

#[derive(Debug, Args)]
pub struct KitArgs {
    /// The run whose models the site evaluates: a run folder, `EXPERIMENT` (its latest run) or
    /// `EXPERIMENT/RUN-ID`
    pub run: String,
    /// Where to write the kit
    #[arg(short, long, default_value = "site-kit.tar.gz")]
    pub output: PathBuf,
    /// Only these models (predict labels, comma-separated) [default: every predict stage's]
    #[arg(long, value_delimiter = ',')]
    pub models: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The site kit (`orchestrate kit`)
    pub kit: PathBuf,
    /// The site's labeled cohort folder, in the layout the kit describes (see its `example/`)
    #[arg(long, value_name = "DIR")]
    pub cohort: PathBuf,
    /// The site's name in the results (letters, digits, `-`, `_`)
    #[arg(long, default_value = "site")]
    pub site: String,
    /// Where to write the results to send back
    #[arg(short, long, default_value = "site-results.tar.gz")]
    pub output: PathBuf,
    /// Also put the per-patient scores into the results (they stay home by default)
    #[arg(long)]
    pub share_scores: bool,
    /// Print the site document as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The run the kit was made from
    pub run: String,
    /// The site's results (`orchestrate validate`)
    pub results: PathBuf,
}

fn usage(s: impl Into<String>) -> Error {
    Error::Usage(s.into())
}

fn run_dir(ctx: &Context, spec: &str) -> Result<PathBuf, Error> {
    let cwd = std::env::current_dir().map_err(|e| Error::io(".", e))?;
    Ok(crate::report::run::resolve_run(&ctx.runs, &cwd, spec)?)
}

/// What the run's predict stages used: label, seed, the model input, the cohort inputs.
struct PredictUse {
    label: String,
    seed: u64,
    model_stage: String,
    model_digest: String,
    code: String,
    backend: String,
    cohort: Option<(String, String)>,
}

/// The store's record of a stage of the run, and its key as the typed document.
fn record_of(store: &Store, s: &StageEntry) -> Result<(StageRecord, KeyDoc), Error> {
    let key = s.key.as_deref().ok_or_else(|| {
        usage(format!(
            "stage `{}` has no key: the run is incomplete",
            s.name
        ))
    })?;
    let rec = store.record(key)?.ok_or_else(|| {
        usage(format!(
            "the store has no record of `{}` (key {key}): run the experiment again first",
            s.name
        ))
    })?;
    let doc = KeyDoc::parse(&rec.key_json).ok_or_else(|| {
        usage(format!(
            "the record of `{}` has a key of another layout: run the experiment again first",
            s.name
        ))
    })?;
    Ok((rec, doc))
}

/// The upstream output a dependency reads (the first, for a gathered one).
fn upstream<'a>(doc: &'a KeyDoc, dep: &str) -> Option<&'a StageInput> {
    match doc.inputs.get(dep)? {
        KeyInput::Stage(s) => Some(s),
        KeyInput::Gathered(v) => v.first(),
        KeyInput::Path(_) => None,
    }
}

fn predict_uses(m: &RunManifest, store: &Store) -> Result<Vec<PredictUse>, Error> {
    let mut out = Vec::new();
    for s in m.stages.iter().filter(|s| s.kind == "predict") {
        let (_, doc) = record_of(store, s)?;
        let model_digest = upstream(&doc, "model")
            .map(|i| i.digest.clone())
            .unwrap_or_default();
        // The variant that made it: the train stage whose `model` output has that digest.
        let model_stage = m
            .stages
            .iter()
            .find(|t| t.outs.get("model") == Some(&model_digest))
            .map(|t| t.name.clone())
            .ok_or_else(|| {
                usage(format!(
                    "no stage of the run made the model `{}` uses",
                    s.name
                ))
            })?;
        let cohort = crate::stages::predict::DEPS
            .optional
            .iter()
            .find_map(|c| upstream(&doc, c).map(|i| (i.stage.clone(), i.out.clone())));
        out.push(PredictUse {
            label: doc.config.config["label"]
                .as_str()
                .unwrap_or("model")
                .to_string(),
            seed: s.seed,
            model_stage,
            model_digest,
            code: doc.code.builtin.clone(),
            backend: doc.backend.clone().unwrap_or_else(|| "cpu".to_string()),
            cohort,
        });
    }
    Ok(out)
}

fn stage<'a>(m: &'a RunManifest, name: &str) -> Result<&'a StageEntry, Error> {
    m.stages
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| usage(format!("the run has no stage `{name}`")))
}

/// The path of output `out` of a stage of the run, in the store.
fn output_path(m: &RunManifest, store: &Store, name: &str, out: &str) -> Result<PathBuf, Error> {
    let (rec, _) = record_of(store, stage(m, name)?)?;
    let o = rec
        .outs
        .get(out)
        .ok_or_else(|| usage(format!("stage `{name}` has no output `{out}`")))?;
    Ok(store.object_path(&rec.object).join(&o.path))
}

/// Every file under `dir`, as (path relative to `dir` with `/`, bytes), sorted.
fn files_under(dir: &Path) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).map_err(|e| Error::io(&d, e))? {
            let p = e.map_err(|e| Error::io(&d, e))?.path();
            let meta = std::fs::symlink_metadata(&p).map_err(|e| Error::io(&p, e))?;
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_file() {
                let rel = p.strip_prefix(dir).expect("under dir");
                let rel = rel.to_string_lossy().replace('\\', "/");
                out.push((rel, std::fs::read(&p).map_err(|e| Error::io(&p, e))?));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// A small synthetic cohort in `shape`: 8 patients, half of them cases, all-zero features.
fn example_cohort(shape: &CohortShape) -> Cohort {
    let n = 8;
    Cohort {
        format: crate::cohort::COHORT_FORMAT,
        name: "example".into(),
        n,
        ids: (1..=n).map(|i| format!("EXAMPLE{i:03}")).collect(),
        labels: Some((0..n).map(|i| (i % 2) as u8).collect()),
        imaging: crate::cohort::Modality::zeros(n, shape.imaging_tokens, shape.imaging_width),
        clinical: crate::cohort::Modality::zeros(n, shape.clinical_tokens, shape.clinical_width),
        true_logit: None,
    }
}

fn cohort_files(c: &Cohort) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let tmp = tempfile::tempdir().map_err(|e| Error::io(".", e))?;
    c.write(tmp.path())
        .map_err(|e| Error::Internal(e.to_string()))?;
    files_under(tmp.path())
}

pub fn kit(ctx: &Context, args: &KitArgs) -> Result<i32, Error> {
    let dir = run_dir(ctx, &args.run)?;
    let m = read_manifest(&dir)?;
    if m.status != RunStatus::Ok {
        return Err(usage(format!(
            "run `{}/{}` is {}: a kit is made from a complete run",
            m.experiment, m.run_id, m.status
        )));
    }
    let store = read_store(ctx)?;
    let mut uses = predict_uses(&m, &store)?;
    if uses.is_empty() {
        return Err(usage(format!(
            "run `{}/{}` has no predict stage",
            m.experiment, m.run_id
        )));
    }
    let labels: BTreeSet<String> = uses.iter().map(|u| u.label.clone()).collect();
    if let Some(unknown) = args.models.iter().find(|l| !labels.contains(*l)) {
        return Err(usage(format!(
            "--models `{unknown}`: the run's models are {}",
            labels.iter().cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    if !args.models.is_empty() {
        uses.retain(|u| args.models.contains(&u.label));
    }
    if let Some(u) = uses.iter().find(|u| !valid_name(&u.label)) {
        return Err(usage(format!(
            "model label `{}` cannot name a kit folder (letters, digits, `-`, `_`)",
            u.label
        )));
    }
    let eval = m
        .stages
        .iter()
        .find(|s| s.kind == "evaluate")
        .ok_or_else(|| usage("the run has no evaluate stage: nothing says how to compare"))?;
    let (_, eval_key) = record_of(&store, eval)?;
    // The cohort shape the models were trained and tested on.
    let (cstage, cout) = uses[0]
        .cohort
        .clone()
        .ok_or_else(|| usage("the predict stages score no cohort"))?;
    let c = read_cohort(&output_path(&m, &store, &cstage, &cout)?)
        .map_err(|e| Error::Internal(e.to_string()))?;
    let shape = CohortShape {
        imaging_tokens: c.imaging.tokens,
        imaging_width: c.imaging.width,
        clinical_tokens: c.clinical.tokens,
        clinical_width: c.clinical.width,
    };
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut models = Vec::new();
    for u in &uses {
        let model_dir = output_path(&m, &store, &u.model_stage, "model")?;
        if fingerprint::hash_path(&model_dir, &NoCache)? != u.model_digest {
            return Err(usage(format!(
                "the stored model of `{}` no longer matches its digest: run the experiment again",
                u.model_stage
            )));
        }
        let dir = format!("models/{}-seed{}", u.label, u.seed);
        for (rel, bytes) in files_under(&model_dir)? {
            files.insert(format!("{dir}/{rel}"), bytes);
        }
        let train = stage(&m, &u.model_stage)?;
        models.push(KitModel {
            label: u.label.clone(),
            seed: u.seed,
            train_stage: u.model_stage.clone(),
            train_key: train.key.clone().unwrap_or_default(),
            digest: u.model_digest.clone(),
            dir,
        });
    }
    for (rel, bytes) in cohort_files(&example_cohort(&shape))? {
        files.insert(format!("example/{rel}"), bytes);
    }
    let predict_code = uses[0].code.clone();
    let doc = KitDoc {
        format: KIT_FORMAT,
        experiment: m.experiment.clone(),
        run_id: m.run_id.clone(),
        created_at: m.finished_at.clone(),
        orchestrate_version: m.provenance.orchestrate_version.clone(),
        binary_identity: m.provenance.binary_identity.clone(),
        predict_code,
        evaluate_code: eval_key.code.builtin,
        backend: uses[0].backend.clone(),
        models,
        evaluate: eval_key.config.config,
        cohort: shape,
        example: "example".into(),
    };
    let mut bytes = serde_json::to_vec_pretty(&doc).expect("a kit serializes");
    bytes.push(b'\n');
    files.insert("kit.json".into(), bytes);
    let size: usize = files.values().map(Vec::len).sum();
    let index = write_archive(&args.output, KIT_KIND, files)?;
    let digest = fingerprint::hash_bytes(&serde_json::to_vec(&index).expect("serializes"));
    println!(
        "{:>12} `{}`: {} model(s) of run `{}/{}` ({}), {} bytes before compression, kit {}",
        "Packed",
        args.output.display(),
        doc.models.len(),
        m.experiment,
        m.run_id,
        labels_of(&doc.models),
        size,
        &digest[..12]
    );
    println!(
        "{:>12} models, their digests and keys, the evaluate configuration, the cohort layout \
         (imaging {}×{}, clinical {}×{}) with an 8-patient synthetic example; no training or test data",
        "Contains",
        doc.cohort.imaging_tokens,
        doc.cohort.imaging_width,
        doc.cohort.clinical_tokens,
        doc.cohort.clinical_width
    );
    Ok(exit::OK)
}

fn labels_of(models: &[KitModel]) -> String {
    let mut by: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for m in models {
        by.entry(&m.label).or_default().push(m.seed);
    }
    by.iter()
        .map(|(l, s)| format!("{l} × {} seed(s)", s.len()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads and checks a kit: archive, document, names, the files each model needs.
fn read_kit(path: &Path) -> Result<(KitDoc, crate::verify::archive::Archive), Error> {
    let archive = read_archive(path, KIT_KIND)?;
    let bad = |m: String| usage(format!("kit `{}`: {m}", path.display()));
    let bytes = archive
        .files
        .get("kit.json")
        .ok_or_else(|| bad("no `kit.json`".into()))?;
    let doc: KitDoc = serde_json::from_slice(bytes).map_err(|e| bad(format!("`kit.json`: {e}")))?;
    if doc.format != KIT_FORMAT {
        return Err(bad(format!(
            "format {} (this binary reads {KIT_FORMAT})",
            doc.format
        )));
    }
    if doc.models.is_empty() {
        return Err(bad("it holds no model".into()));
    }
    let seeds: BTreeSet<u64> = doc.models.iter().map(|m| m.seed).collect();
    for m in &doc.models {
        if !valid_name(&m.label) || m.dir != format!("models/{}-seed{}", m.label, m.seed) {
            return Err(bad(format!(
                "model `{}` seed {} is misnamed",
                crate::csv::shown(&m.label),
                m.seed
            )));
        }
        let has: BTreeSet<u64> = doc
            .models
            .iter()
            .filter(|x| x.label == m.label)
            .map(|x| x.seed)
            .collect();
        if has != seeds {
            return Err(bad(format!(
                "model `{}` lacks some of the seeds {seeds:?}",
                m.label
            )));
        }
        if !archive
            .files
            .keys()
            .any(|f| f.starts_with(&format!("{}/", m.dir)))
        {
            return Err(bad(format!(
                "no files for model `{}` seed {}",
                m.label, m.seed
            )));
        }
    }
    Ok((doc, archive))
}

/// The site experiment: each model's files become a stage output (so their digest is checked
/// as any stage's), scored on the site cohort by `predict`, compared by `evaluate` with the
/// run's settings, every comparison on the site's cohort (`test`).
fn site_experiment(doc: &KitDoc) -> String {
    let labels: BTreeSet<&str> = doc.models.iter().map(|m| m.label.as_str()).collect();
    let seeds: BTreeSet<u64> = doc.models.iter().map(|m| m.seed).collect();
    let mut eval = doc.evaluate.clone();
    let keep = |c: &Value| {
        ["a", "b"]
            .iter()
            .all(|k| c[k].as_str().is_some_and(|l| labels.contains(l)))
    };
    let retarget = |c: &Value| {
        let mut c = c.clone();
        c["cohort"] = Value::from("test");
        c
    };
    let primary = eval.get("primary").filter(|p| keep(p)).map(retarget);
    // A pair compared twice (also the other way round) is compared once at the site.
    let pair = |c: &Value| {
        let (a, b) = (c["a"].to_string(), c["b"].to_string());
        if a <= b { (a, b) } else { (b, a) }
    };
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    if let Some(p) = &primary {
        seen.insert(pair(p));
    }
    let secondary: Vec<Value> = eval["secondary"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| keep(c))
        .map(retarget)
        .filter(|c| seen.insert(pair(c)))
        .collect();
    match primary {
        Some(p) => eval["primary"] = p,
        None => {
            if let Some(o) = eval.as_object_mut() {
                o.remove("primary");
            }
        }
    }
    eval["secondary"] = Value::from(secondary);
    if !eval["reference"]
        .as_str()
        .is_some_and(|r| labels.contains(r))
        && let Some(o) = eval.as_object_mut()
    {
        o.remove("reference");
    }
    let mut y = String::from("# Written by `orchestrate validate` from a site kit: do not edit.\n");
    y.push_str(&format!(
        "experiment: site\nseed: 0\nseeds: {:?}\nstages:\n",
        seeds.iter().collect::<Vec<_>>()
    ));
    let mut gather = Vec::new();
    for l in &labels {
        y.push_str(&format!(
            "  model_{l}:\n    kind: command\n    replicate: true\n    cmd: \"mkdir -p {{outs.model}} && cp -R {{workspace}}/models/{l}-seed{{seed}}/. {{outs.model}}/\"\n    outs: {{model: model}}\n"
        ));
        y.push_str(&format!(
            "  predict_{l}:\n    kind: predict\n    deps: {{model: \"stage:model_{l}/model\", test: data/cohort}}\n    config: {{label: {l}}}\n"
        ));
        gather.push(format!("{l}: \"stage:predict_{l}[*]/scores\""));
    }
    y.push_str(&format!(
        "  evaluate:\n    kind: evaluate\n    deps: {{{}}}\n    config: {}\n",
        gather.join(", "),
        serde_json::to_string(&eval).expect("a config serializes")
    ));
    y
}

pub fn validate(ctx: &Context, args: &ValidateArgs) -> Result<i32, Error> {
    if !valid_name(&args.site) {
        return Err(usage(format!(
            "--site `{}`: a site name has letters, digits, `-` and `_` only",
            crate::csv::shown(&args.site)
        )));
    }
    let (doc, archive) = read_kit(&args.kit)?;
    let kit_digest = archive.digest();
    // The stage code that runs must be the code that made the run's results.
    let here = (
        fingerprint::builtin_code_identity(StageKind::Predict),
        fingerprint::builtin_code_identity(StageKind::Evaluate),
    );
    if here.0 != doc.predict_code || here.1 != doc.evaluate_code {
        return Err(usage(format!(
            "this orchestrate ({} , binary {}) runs other predict/evaluate code than the kit was \
             made with (orchestrate {}, binary {}): install that version to validate this kit, \
             so that the numbers mean the same thing at both sites",
            env!("CARGO_PKG_VERSION"),
            &fingerprint::BINARY_IDENTITY[..12],
            doc.orchestrate_version,
            &doc.binary_identity[..12.min(doc.binary_identity.len())]
        )));
    }
    // The site's cohort: read and checked like any cohort, then against the kit's layout.
    let cohort = read_cohort(&args.cohort).map_err(|e| usage(e.to_string()))?;
    let want = &doc.cohort;
    let got = (
        cohort.imaging.tokens,
        cohort.imaging.width,
        cohort.clinical.tokens,
        cohort.clinical.width,
    );
    if got
        != (
            want.imaging_tokens,
            want.imaging_width,
            want.clinical_tokens,
            want.clinical_width,
        )
    {
        return Err(usage(format!(
            "cohort `{}`: imaging {}×{}, clinical {}×{}; the kit's models expect imaging {}×{}, \
             clinical {}×{} (tokens × features; see the kit's `example/`)",
            args.cohort.display(),
            got.0,
            got.1,
            got.2,
            got.3,
            want.imaging_tokens,
            want.imaging_width,
            want.clinical_tokens,
            want.clinical_width
        )));
    }
    let labels = cohort.labels.as_ref().ok_or_else(|| {
        usage(format!(
            "cohort `{}` has no labels: validation needs the outcome",
            args.cohort.display()
        ))
    })?;
    let n_pos = labels.iter().filter(|&&l| l == 1).count();
    crate::cohort::check_classes(n_pos, cohort.n - n_pos)
        .map_err(|m| usage(format!("cohort `{}`: {m}", args.cohort.display())))?;
    let cohort_digest = fingerprint::hash_path(&args.cohort, &NoCache)?;
    // An isolated workspace and store of its own, under this workspace's runs/.
    let ws = ctx
        .runs
        .join(".sites")
        .join(format!("{}-{}", args.site, &kit_digest[..12]));
    let write = |rel: &str, bytes: &[u8]| -> Result<(), Error> {
        let p = ws.join(rel);
        std::fs::create_dir_all(p.parent().expect("has a parent")).map_err(|e| Error::io(&p, e))?;
        std::fs::write(&p, bytes).map_err(|e| Error::io(&p, e))
    };
    for (name, bytes) in &archive.files {
        if name.starts_with("models/") {
            write(name, bytes)?;
        }
    }
    for f in ["cohort.json", "imaging.f32", "clinical.f32"] {
        let src = args.cohort.join(f);
        let bytes = std::fs::read(&src).map_err(|e| Error::io(&src, e))?;
        write(&format!("data/cohort/{f}"), &bytes)?;
    }
    write("experiments/site.yaml", site_experiment(&doc).as_bytes())?;
    let site_ctx = Context {
        workspace: ws.clone(),
        store: ws.join("store"),
        runs: ws.join("runs"),
    };
    let file = ws.join("experiments/site.yaml");
    let exp = super::run::load(&site_ctx, &file)?;
    let record = super::run::run_experiment(&site_ctx, exp, &super::run::RunArgs::defaults(file))?;
    if record.manifest.status != RunStatus::Ok {
        return Err(Error::StagesFailed {
            failed: record.manifest.counts().get("failed").copied().unwrap_or(0),
            total: record.manifest.stages.len(),
        });
    }
    // The models the site scored with are the kit's, byte for byte.
    let mut models = Vec::new();
    for km in &doc.models {
        let name = format!("model_{}[seed={}]", km.label, km.seed);
        let s = stage(&record.manifest, &name)?;
        let digest = s.outs.get("model").cloned().unwrap_or_default();
        if digest != km.digest {
            return Err(usage(format!(
                "kit `{}`: the files of model `{}` seed {} hash to {}, not to {} as the kit says",
                args.kit.display(),
                km.label,
                km.seed,
                &digest[..12.min(digest.len())],
                &km.digest[..12.min(km.digest.len())]
            )));
        }
        models.push(SiteModel {
            label: km.label.clone(),
            seed: km.seed,
            digest,
        });
    }
    let site_store = read_store(&site_ctx)?;
    let results_path = output_path(&record.manifest, &site_store, "evaluate", "results")?;
    let results = std::fs::read(&results_path).map_err(|e| Error::io(&results_path, e))?;
    let provenance = manifest::provenance(None);
    let site = SiteDoc {
        format: SITE_FORMAT,
        site: args.site.clone(),
        kit: kit_digest.clone(),
        experiment: doc.experiment.clone(),
        run_id: doc.run_id.clone(),
        models,
        cohort: SiteCohort {
            digest: cohort_digest,
            n: cohort.n,
            n_pos,
            prevalence: n_pos as f64 / cohort.n as f64,
        },
        results: fingerprint::hash_bytes(&results),
        scores_shared: args.share_scores,
        orchestrate_version: provenance.orchestrate_version.clone(),
        binary_identity: provenance.binary_identity.clone(),
        predict_code: here.0.to_string(),
        evaluate_code: here.1.to_string(),
        os: provenance.os.clone(),
        arch: provenance.arch.clone(),
        backend: doc.backend.clone(),
        computed_at: record.manifest.finished_at.clone(),
    };
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut site_bytes = serde_json::to_vec_pretty(&site).expect("serializes");
    site_bytes.push(b'\n');
    files.insert("site.json".into(), site_bytes);
    files.insert("results.json".into(), results);
    if let Ok(report) = std::fs::read(record.dir.join("report.html")) {
        files.insert("report.html".into(), report);
    }
    if args.share_scores {
        let mut all = String::new();
        for s in record
            .manifest
            .stages
            .iter()
            .filter(|s| s.kind == "predict")
        {
            let p = output_path(&record.manifest, &site_store, &s.name, "scores")?;
            let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
            let body = if all.is_empty() {
                text.as_str()
            } else {
                text.split_once('\n').map_or("", |x| x.1)
            };
            all.push_str(body);
        }
        files.insert("scores.csv".into(), all.into_bytes());
    }
    let listed: Vec<(String, usize)> = files.iter().map(|(n, b)| (n.clone(), b.len())).collect();
    write_archive(&args.output, RESULTS_KIND, files)?;
    if args.json {
        print_json(&site)?;
    } else {
        println!(
            "{:>12} `{}` for site `{}`: {} patients ({} cases), {} model(s), kit {}",
            "Wrote",
            args.output.display(),
            site.site,
            site.cohort.n,
            site.cohort.n_pos,
            site.models.len(),
            &kit_digest[..12]
        );
        println!(
            "{:>12} exactly these files (read report.html before sending anything):",
            "It holds"
        );
        for (name, len) in listed {
            let what = match name.as_str() {
                "site.json" => {
                    "the site's name, cohort size, prevalence and data digest; the kit's, models' and results' digests; provenance"
                }
                "results.json" => {
                    "AUCs with DeLong and bootstrap intervals, paired comparisons, calibration"
                }
                "report.html" => "the same as a readable report",
                "scores.csv" => "PER-PATIENT SCORES (you chose --share-scores)",
                _ => "",
            };
            println!("{:>12} {name} ({len} bytes): {what}", "");
        }
        if !args.share_scores {
            println!("{:>12} no patient data and no per-patient scores", "");
        }
    }
    Ok(exit::OK)
}

pub fn import_site(ctx: &Context, args: &ImportArgs) -> Result<i32, Error> {
    let dir = run_dir(ctx, &args.run)?;
    let m = read_manifest(&dir)?;
    let archive = read_archive(&args.results, RESULTS_KIND)?;
    let refuse = |why: String| {
        usage(format!(
            "site results `{}` refused: {why}",
            args.results.display()
        ))
    };
    let site_bytes = archive
        .files
        .get("site.json")
        .ok_or_else(|| refuse("no `site.json`".into()))?;
    let site: SiteDoc =
        serde_json::from_slice(site_bytes).map_err(|e| refuse(format!("`site.json`: {e}")))?;
    if site.format != SITE_FORMAT || !valid_name(&site.site) {
        return Err(refuse(
            "`site.json` has another format or an invalid site name".into(),
        ));
    }
    let results = archive
        .files
        .get("results.json")
        .ok_or_else(|| refuse("no `results.json`".into()))?;
    if fingerprint::hash_bytes(results) != site.results {
        return Err(refuse(
            "`results.json` does not match the digest `site.json` gives for it (edited?)".into(),
        ));
    }
    let parsed: Value =
        serde_json::from_slice(results).map_err(|e| refuse(format!("`results.json`: {e}")))?;
    crate::results::parse(parsed).map_err(|e| refuse(format!("`results.json`: {e}")))?;
    if site.experiment != m.experiment || site.run_id != m.run_id {
        return Err(refuse(format!(
            "they were computed with a kit of run `{}/{}`, not of `{}/{}`",
            site.experiment, site.run_id, m.experiment, m.run_id
        )));
    }
    let store = read_store(ctx)?;
    let uses = predict_uses(&m, &store)?;
    for sm in &site.models {
        let Some(u) = uses
            .iter()
            .find(|u| u.label == sm.label && u.seed == sm.seed)
        else {
            return Err(refuse(format!(
                "the run has no model `{}` seed {}",
                sm.label, sm.seed
            )));
        };
        if u.model_digest != sm.digest {
            return Err(refuse(format!(
                "model `{}` seed {} there is {}, the run's is {}: they are another run's models",
                sm.label,
                sm.seed,
                &sm.digest[..12.min(sm.digest.len())],
                &u.model_digest[..12]
            )));
        }
        if u.code != site.predict_code {
            return Err(refuse(
                "the site ran other predict code than this run".into(),
            ));
        }
    }
    let dest = dir.join(crate::report::sites::SITES).join(&site.site);
    let same = |f: &str, b: &[u8]| std::fs::read(dest.join(f)).is_ok_and(|x| x == b);
    if dest.exists() {
        if same("site.json", site_bytes) && same("results.json", results) {
            println!(
                "{:>12} site `{}` is already imported into `{}/{}`",
                "Unchanged", site.site, m.experiment, m.run_id
            );
            return Ok(exit::OK);
        }
        return Err(usage(format!(
            "run `{}/{}` already has other results of site `{}` (`{}`): remove that folder to replace them",
            m.experiment,
            m.run_id,
            site.site,
            dest.display()
        )));
    }
    let tmp = dir
        .join(crate::report::sites::SITES)
        .join(format!(".{}.tmp", site.site));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    for (f, b) in [
        ("site.json", site_bytes.as_slice()),
        ("results.json", results.as_slice()),
    ] {
        std::fs::write(tmp.join(f), b).map_err(|e| Error::io(tmp.join(f), e))?;
    }
    std::fs::rename(&tmp, &dest).map_err(|e| Error::io(&dest, e))?;
    // The run's report shows the site from now on.
    let (_, html) = crate::report::run::render_run(
        &dir,
        &ctx.store,
        &crate::report::render::Templates::embedded(),
    )?;
    let report = dir.join("report.html");
    std::fs::write(&report, html).map_err(|e| Error::io(&report, e))?;
    println!(
        "{:>12} site `{}` into `{}/{}`: {} patients, prevalence {:.3}, computed on their machine with kit {}",
        "Imported",
        site.site,
        m.experiment,
        m.run_id,
        site.cohort.n,
        site.cohort.prevalence,
        &site.kit[..12]
    );
    Ok(exit::OK)
}
