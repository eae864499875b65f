//! Reports: the run report written by `run`, `orchestrate report` (re-render, view model),
//! the `report` stage, `orchestrate compare`, and escaping of every user-provided string.
//!
//! The fixture is the same small study the browser check renders (tests/browser/fixture): three
//! models scored by awk on two cohorts over three seeds, an evaluate stage and a report stage.

use crate::common::{Workspace, stages_with};

const EXPERIMENT: &str = include_str!("../browser/fixture/experiment.yaml");
const DATA_AWK: &str = include_str!("../browser/fixture/data.awk");
const SCORE_AWK: &str = include_str!("../browser/fixture/score.awk");
const CURVES_AWK: &str = include_str!("../browser/fixture/curves.awk");

fn workspace(experiment: &str) -> Workspace {
    let ws = Workspace::new();
    ws.write("scripts/data.awk", DATA_AWK)
        .write("scripts/score.awk", SCORE_AWK)
        .write("scripts/curves.awk", CURVES_AWK)
        .write("experiments/study.yaml", experiment);
    ws
}

fn run_dir(m: &serde_json::Value) -> String {
    format!(
        "runs/{}/{}",
        m["experiment"].as_str().unwrap(),
        m["run_id"].as_str().unwrap()
    )
}

/// Filters for what changes from run to run and machine to machine: run ids, times, digests
/// (keys embed the binary's code identity), the host, the temporary workspace.
fn settings(ws: &Workspace) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.add_filter(r"\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{4}", "[RUN-ID]");
    s.add_filter(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", "[TIME]");
    s.add_filter(r"[0-9a-f]{64}", "[DIGEST]");
    s.add_filter(r"\b\d+(\.\d+)? (ms|s)\b", "[DURATION]");
    s.add_filter(r"\d+ min \d+ s", "[DURATION]");
    s.add_filter(r"\d+ thread\(s\)", "[N] thread(s)");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    if !host.trim().is_empty() {
        s.add_filter(&format!(r"\b{}\b", regex_escape(host.trim())), "[HOST]");
    }
    s.add_filter(&regex_escape(&ws.path().display().to_string()), "[WS]");
    s.add_filter(
        r"(<dt>CPUs</dt><dd>|\x22value\x22: \x22)\d+(\x22|</dd>)",
        "$1[N]$2",
    );
    s.add_filter(r"(<dt>command line</dt><dd>)[^<]*", "$1[ARGV]");
    s.add_filter(
        r"(\x22key\x22: \x22command line\x22,\s*\x22value\x22: \x22)[^\x22]*",
        "$1[ARGV]",
    );
    s.add_filter(r"(<dt>orchestrate version</dt><dd>)[^<]*", "$1[VERSION]");
    s.add_filter(r"orchestrate \d+\.\d+\.\d+", "orchestrate [VERSION]");
    s.add_filter(
        r"(\x22(version|value)\x22: \x22)\d+\.\d+\.\d+\x22",
        "$1[VERSION]\x22",
    );
    s
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if "\\.+*?()|[]{}^$".contains(c) {
                vec!['\\', c]
            } else {
                vec![c]
            }
        })
        .collect()
}

/// Replaces every SVG in a view model by its figure id: figures are checked in the HTML.
fn without_svg(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if k == "svg" {
                    *x = serde_json::Value::String("[svg]".into());
                } else {
                    without_svg(x);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(without_svg),
        _ => {}
    }
}

/// What a self-contained, script-free page must not contain.
fn assert_self_contained(html: &str) {
    assert!(!html.contains("<script"), "a script tag");
    assert!(!html.contains("src="), "an external resource");
    assert!(!html.contains("url("), "a CSS url()");
    assert!(!html.contains("@import"), "a CSS import");
    // The only absolute URL is the SVG namespace, which is never fetched.
    let urls = html.matches("http://").count() + html.matches("https://").count();
    let ns = html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count();
    assert_eq!(urls, ns, "absolute URLs besides the SVG namespace");
}

#[test]
fn a_run_with_results_gets_a_report_with_every_section() {
    let ws = workspace(EXPERIMENT);
    let m = ws.run_ok("experiments/study.yaml");
    let dir = run_dir(&m);
    let html = ws.read(&format!("{dir}/report.html"));
    assert_self_contained(&html);
    for needle in [
        "<h1>JEPA vs baselines (synthetic stand-in)</h1>",
        "id=\"summary\"",
        "id=\"methods\"",
        "<table class=\"results\" data-cohort=\"internal\">",
        "<table class=\"results\" data-cohort=\"external\">",
        "id=\"e1-internal-roc\"",
        "id=\"e1-forest\"",
        "id=\"e1-seeds\"",
        "id=\"curves\"",
        "pretrain_jepa",
        "collapse monitor",
        "id=\"paper\"",
        "unregularized multimodal",
        "id=\"provenance\"",
        "orchestrate reproduce experiments&#x2f;study.yaml",
        "500 resamples, seed 5",
    ] {
        assert!(html.contains(needle), "report lacks `{needle}`");
    }
    // The paper's published 0.91 beside our interval, and Holm-adjusted p for secondaries.
    assert!(html.contains("<td class=\"num\">0.91</td>"));
    assert!(html.contains("Holm"));
    // The report stage rendered the same results without provenance.
    let show = ws.run(&["show", "report", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    let stage_html =
        std::fs::read_to_string(format!("{}/report.html", v["object_dir"].as_str().unwrap()))
            .unwrap();
    assert_self_contained(&stage_html);
    assert!(stage_html.contains("id=\"e1-internal-roc\""));
    assert!(!stage_html.contains("id=\"provenance\""));
}

#[test]
fn report_rerenders_a_run_identically_without_recomputing() {
    let ws = workspace(EXPERIMENT);
    let m = ws.run_ok("experiments/study.yaml");
    let dir = run_dir(&m);
    let first = ws.read(&format!("{dir}/report.html"));
    std::fs::remove_file(ws.join(&format!("{dir}/report.html"))).unwrap();
    let out = ws.run(&["report", "study", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = ws.read(&format!("{dir}/report.html"));
    assert_eq!(first, again, "a re-render changed the report");
    // Nothing was recomputed: the store is not even opened, so no stage record changes.
    let mut view: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    without_svg(&mut view);
    let settings = settings(&ws);
    settings.bind(|| {
        insta::assert_snapshot!("view_model", serde_json::to_string_pretty(&view).unwrap());
        insta::assert_snapshot!("report_html", again);
    });
    // The other spellings of RUN find the same run.
    for spec in [
        dir.clone(),
        format!("study/{}", m["run_id"].as_str().unwrap()),
    ] {
        let out = ws.run(&["report", &spec, "-o", "again.html"]);
        assert!(
            out.status.success(),
            "{spec}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(ws.read("again.html"), first);
    }
    let out = ws.run(&["report", "nosuch"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no run `nosuch`"));
}

#[test]
fn a_template_folder_overrides_the_embedded_templates() {
    let ws = workspace(EXPERIMENT);
    ws.run_ok("experiments/study.yaml");
    ws.write(
        "mytemplates/partials/style.html",
        "<style>body { color: #123456; }</style>",
    );
    let out = ws.run(&[
        "report",
        "study",
        "--templates",
        "mytemplates",
        "-o",
        "x.html",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = ws.read("x.html");
    assert!(html.contains("#123456"));
    // The other templates are still the embedded ones.
    assert!(html.contains("id=\"summary\""));
}

#[test]
fn the_report_stage_is_fresh_until_its_inputs_change() {
    let ws = workspace(EXPERIMENT);
    ws.run_ok("experiments/study.yaml");
    let again = ws.run_ok("experiments/study.yaml");
    assert!(stages_with(&again, "fresh").contains(&"report".to_string()));
    ws.write(
        "experiments/study.yaml",
        &EXPERIMENT.replace("title: JEPA vs baselines", "title: JEPA against baselines"),
    );
    let third = ws.run_ok("experiments/study.yaml");
    assert_eq!(stages_with(&third, "ran"), vec!["report".to_string()]);
}

#[test]
fn a_report_config_with_an_unknown_section_is_refused_at_load() {
    let ws = workspace(&EXPERIMENT.replace(
        "      title: JEPA vs baselines",
        "      sections: [summary, resluts]\n      title: JEPA vs baselines",
    ));
    let out = ws.run(&["plan", "experiments/study.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown section `resluts`"), "{err}");
}

#[test]
fn every_user_string_is_escaped() {
    const EVIL: &str = "<script>alert(1)</script>";
    let exp = EXPERIMENT
        .replace("\"imaging\"", &format!("\"{EVIL}\""))
        .replace(
            "notes: \"Scores",
            &format!("notes: \"{EVIL} <b>bold</b> & Scores"),
        )
        .replace(
            "description: JEPA-pretrained",
            &format!("description: {EVIL} JEPA-pretrained"),
        );
    let ws = workspace(&exp);
    let m = ws.run_ok("experiments/study.yaml");
    let dir = run_dir(&m);
    let show = ws.run(&["show", "report", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    let stage_html =
        std::fs::read_to_string(format!("{}/report.html", v["object_dir"].as_str().unwrap()))
            .unwrap();
    let out = ws.run(&["compare", "study"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (what, html) in [
        ("run report", ws.read(&format!("{dir}/report.html"))),
        ("stage report", stage_html),
        ("compare", ws.read(&format!("{dir}/compare.html"))),
    ] {
        assert_self_contained(&html);
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;")
                || html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{what}: the model name is not shown as text"
        );
        assert!(
            !html.contains("<b>bold</b>"),
            "{what}: notes were not escaped"
        );
    }
}

#[test]
fn compare_shows_a_sweeps_variants_sorted_and_what_differs() {
    let ws = workspace(&format!(
        "{EXPERIMENT}\nsweep:\n  data.params.shift: [0, 2]\n"
    ));
    let m = ws.run_ok("experiments/study.yaml");
    let dir = run_dir(&m);
    // The run report plots AUC and ΔAUC against the swept value.
    let report = ws.read(&format!("{dir}/report.html"));
    assert!(report.contains("id=\"sweep\""));
    assert!(report.contains("id=\"sweep-external-auc\""));
    assert!(report.contains("id=\"sweep-external-delta\""));
    assert!(report.contains("Variant shift=2"));

    let out = ws.run(&["compare", "study", "--baseline", "imaging", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let view: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let labels: Vec<&str> = view["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["shift=0", "shift=2"]);
    let params: Vec<&str> = view["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(params, ["data.params.shift", "sweep: shift"]);
    let tables = view["tables"].as_array().unwrap();
    assert_eq!(tables.len(), 4);
    // Sorted by AUC: within each cohort, highest first.
    let by_auc = tables.iter().find(|t| t["id"] == "by-auc").unwrap();
    let rows = by_auc["rows"].as_array().unwrap();
    for w in rows.windows(2) {
        if w[0]["cohort"] == w[1]["cohort"] {
            assert!(w[0]["auc"].as_str().unwrap() >= w[1]["auc"].as_str().unwrap());
        }
    }
    // The baseline's own cell says so; same-run cells use evaluate's paired interval.
    assert!(
        rows.iter()
            .any(|r| r["baseline"] == true && r["delta"] == "baseline")
    );
    assert!(rows.iter().any(|r| r["delta_method"] == "paired"));
    let html = ws.read(&format!("{dir}/compare.html"));
    assert_self_contained(&html);
    for id in ["by-run", "by-auc", "by-delta", "by-model"] {
        assert!(html.contains(&format!("<section class=\"sorted\" id=\"{id}\">")));
    }

    // Across runs: a fixed baseline cell in one run's variant gives approximate (unpaired)
    // intervals to the other run's cells.
    let m2 = ws.run_ok("experiments/study.yaml");
    assert_ne!(m2["run_id"], m["run_id"]);
    let fixed = format!("study/{} [shift=0]", m["run_id"].as_str().unwrap());
    let out = ws.run(&[
        "compare",
        &dir,
        "study",
        "--baseline",
        "jepa",
        "--baseline-in",
        &fixed,
        "-o",
        "c.html",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(ws.read("c.html").contains(">approx<"));
    let bad = ws.run(&["compare", "study", "--baseline", "nosuch"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--baseline `nosuch`"));
}

/// The fixture study swept over two axes: the internal cohort's size `n` (declared 180 before 90,
/// so text order and value order differ) and the external shift.
fn two_axis_workspace() -> Workspace {
    let exp = EXPERIMENT
        .replace("-v n_internal=180", "-v n_internal={params.n}")
        .replace(
            "    params: {shift: 1}\n",
            "    params: {shift: 1, n: 180}\n",
        );
    assert!(
        exp.contains("{params.n}") && exp.contains("n: 180"),
        "fixture changed"
    );
    workspace(&format!(
        "{exp}\nsweep:\n  data.params.n: [180, 90]\n  data.params.shift: [0, 2]\n"
    ))
}

#[test]
fn a_two_axis_sweep_gets_a_regime_map_with_values_in_numeric_order() {
    let ws = two_axis_workspace();
    let m = ws.run_ok("experiments/study.yaml");
    let dir = run_dir(&m);

    // results.json keeps the grid: variants ordered by value, each axis with its values.
    let results: serde_json::Value =
        serde_json::from_str(&ws.read(&format!("{dir}/results.json"))).unwrap();
    let order: Vec<(u64, u64)> = results["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["coords"]["n"].as_u64().unwrap(),
                v["coords"]["shift"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(order, [(90, 0), (90, 2), (180, 0), (180, 2)]);
    assert_eq!(
        results["axes"],
        serde_json::json!([{"name": "n", "values": [90, 180]}, {"name": "shift", "values": [0, 2]}])
    );

    // The run report shows one grid per declared comparison, rows and columns by value.
    let report = ws.read(&format!("{dir}/report.html"));
    assert!(report.contains("<section id=\"map\">"), "no map section");
    assert!(report.contains("id=\"map-jepa-multimodal-internal\""));
    assert!(report.contains("id=\"map-jepa-imaging-external-lines\""));

    let out = ws.run(&["compare", "study", "--json"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let view: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let map = &view["map"];
    assert_eq!(map["rows_axis"], "n");
    assert_eq!(map["cols_axis"], "shift");
    let grids = map["grids"].as_array().unwrap();
    assert_eq!(grids.len(), 3, "primary and two secondary comparisons");
    let g = &grids[0];
    assert_eq!(g["title"], "jepa − multimodal, internal cohort");
    assert_eq!(labels_of(&g["rows"], "label"), ["90", "180"]);
    assert_eq!(g["cols"], serde_json::json!(["0", "2"]));
    assert!(
        g["holm"]
            .as_str()
            .unwrap()
            .contains("Holm across the 4 cells"),
        "{}",
        g["holm"]
    );
    let cell = &g["rows"][0]["cells"][0];
    assert_ne!(cell["delta"], "—", "{cell}");
    assert!(
        cell["interval"].as_str().unwrap().starts_with('('),
        "{cell}"
    );
    assert!(
        cell["seeds"].as_str().unwrap().ends_with("3 seeds"),
        "{cell}"
    );
    // The units are listed in the same order as the map.
    assert_eq!(
        labels_of(&view["units"], "label"),
        [
            "n=90, shift=0",
            "n=90, shift=2",
            "n=180, shift=0",
            "n=180, shift=2"
        ]
    );
}

#[test]
fn compare_pairs_the_variants_of_two_sweep_runs_by_their_coordinates() {
    let ws = two_axis_workspace();
    let first = ws.run_ok("experiments/study.yaml");
    // A second run of the same grid with a weaker JEPA.
    let weaker = ws.read("experiments/study.yaml").replace(
        "params: {model: \"jepa\", internal: 3.1, external: 1.9}",
        "params: {model: \"jepa\", internal: 2.0, external: 1.0}",
    );
    ws.write("experiments/study.yaml", &weaker);
    ws.run_ok("experiments/study.yaml");
    let base = first["run_id"].as_str().unwrap();
    let out = ws.run(&[
        "compare",
        &format!("study/{base}"),
        "study",
        "--baseline",
        "jepa",
        "--baseline-run",
        base,
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let view: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = view["tables"][0]["rows"].as_array().unwrap();
    let jepa_of_second: Vec<&serde_json::Value> = rows
        .iter()
        .filter(|r| r["model"] == "jepa" && !r["unit"].as_str().unwrap().contains(base))
        .collect();
    assert_eq!(jepa_of_second.len(), 8, "4 variants × 2 cohorts");
    for r in jepa_of_second {
        assert_eq!(r["delta_method"], "approx", "{r}");
        assert!(
            r["delta"].as_str().unwrap().starts_with('−'),
            "a weaker JEPA: {r}"
        );
    }
    assert!(
        view["baseline"]
            .as_str()
            .unwrap()
            .contains("same coordinates"),
        "{}",
        view["baseline"]
    );
    let none = ws.run(&["compare", "study", "--baseline-run", "no-such-run"]);
    assert_eq!(none.status.code(), Some(2), "{}", stderr_of(&none));
}

/// The text field `key` of every element of a JSON array.
fn labels_of<'a>(list: &'a serde_json::Value, key: &str) -> Vec<&'a str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|x| x[key].as_str().unwrap())
        .collect()
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
