//! Renders view models with minijinja. The templates are embedded in the binary (so the `report`
//! stage's code identity covers them) and can be overridden from a folder (`--templates DIR`):
//! a file there replaces the embedded template of the same name.
//!
//! Every template is named `*.html`, so minijinja escapes every value by default; figures are the
//! only values marked safe, and their text was escaped when they were drawn (see `svg`).

use std::path::PathBuf;

use minijinja::{Environment, Error as TemplateError, ErrorKind, Value};
use serde::Serialize;

use super::ReportError;

/// The templates compiled into the binary: name → source.
pub const EMBEDDED: &[(&str, &str)] = &[
    ("report.html", include_str!("../../templates/report.html")),
    ("compare.html", include_str!("../../templates/compare.html")),
    (
        "partials/style.html",
        include_str!("../../templates/partials/style.html"),
    ),
    (
        "partials/macros.html",
        include_str!("../../templates/partials/macros.html"),
    ),
];

/// Where templates come from.
#[derive(Debug, Clone, Default)]
pub struct Templates {
    /// A folder whose files replace the embedded templates of the same name.
    pub dir: Option<PathBuf>,
}

impl Templates {
    pub fn embedded() -> Templates {
        Templates { dir: None }
    }

    pub fn from_dir(dir: PathBuf) -> Templates {
        Templates { dir: Some(dir) }
    }

    fn environment(&self) -> Environment<'static> {
        let mut env = Environment::new();
        let dir = self.dir.clone();
        env.set_loader(move |name: &str| {
            if let Some(d) = &dir {
                // Template names come from our own templates; refuse anything that could leave
                // the folder all the same.
                if !name.split('/').any(|seg| seg == ".." || seg.is_empty()) {
                    let p = d.join(name);
                    if p.is_file() {
                        return std::fs::read_to_string(&p).map(Some).map_err(|e| {
                            TemplateError::new(
                                ErrorKind::InvalidOperation,
                                format!("cannot read template `{}`: {e}", p.display()),
                            )
                        });
                    }
                }
            }
            Ok(EMBEDDED
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, s)| s.to_string()))
        });
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        // Figures are SVG built by `svg`, which escapes every piece of text it draws.
        env.add_filter("figure", |svg: String| Value::from_safe_string(svg));
        env
    }

    /// Renders template `name` with `ctx`.
    pub fn render(&self, name: &str, ctx: &impl Serialize) -> Result<String, ReportError> {
        let env = self.environment();
        let t = env.get_template(name).map_err(template_error)?;
        t.render(minijinja::value::Serde(ctx))
            .map_err(template_error)
    }
}

fn template_error(e: TemplateError) -> ReportError {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    ReportError::Template(msg)
}

/// The report page of a view.
pub fn report(
    view: &super::view::ReportView,
    templates: &Templates,
) -> Result<String, ReportError> {
    templates.render("report.html", &serde_json::json!({ "r": view }))
}

/// The comparison page of a view.
pub fn compare(
    view: &super::compare::CompareView,
    templates: &Templates,
) -> Result<String, ReportError> {
    templates.render("compare.html", &serde_json::json!({ "c": view }))
}
