//! The one error type of experiment loading: where (file, line, column, key path), what, and the
//! offending line of the file.

use std::fmt;
use std::path::PathBuf;

use super::span::Pos;

/// An experiment that cannot be accepted. Displayed as
///
/// ```text
/// experiments/x.yaml:5:5: stages.prep: unknown field `cmdd`, expected one of …
///   |
/// 5 |     cmdd: "cp a b"
///   |     ^^^^
/// ```
#[derive(Debug, Clone)]
pub struct DslError(Box<DslErrorDetails>);

/// The parts of a [`DslError`] (boxed: errors travel through many `Result`s).
#[derive(Debug, Clone)]
pub struct DslErrorDetails {
    pub file: PathBuf,
    pub pos: Option<Pos>,
    /// Dotted path of the offending key (`stages.prep.deps.raw`), when known.
    pub key_path: Option<String>,
    pub message: String,
    /// The offending line of the file and the 1-based column to underline from.
    pub snippet: Option<(usize, String, usize)>,
    pub help: Option<String>,
}

impl DslError {
    pub fn new(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        DslError(Box::new(DslErrorDetails {
            file: file.into(),
            pos: None,
            key_path: None,
            message: message.into(),
            snippet: None,
            help: None,
        }))
    }

    pub fn at(mut self, pos: Option<Pos>, text: &str) -> Self {
        self.pos = pos;
        if let Some(p) = pos
            && let Some(line) = text.lines().nth(p.line.saturating_sub(1))
        {
            self.snippet = Some((p.line, line.to_string(), p.col));
        }
        self
    }

    pub fn key(mut self, path: impl Into<String>) -> Self {
        let path = path.into();
        if !path.is_empty() {
            self.key_path = Some(path);
        }
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

impl std::ops::Deref for DslError {
    type Target = DslErrorDetails;
    fn deref(&self) -> &DslErrorDetails {
        &self.0
    }
}

impl std::ops::DerefMut for DslError {
    fn deref_mut(&mut self) -> &mut DslErrorDetails {
        &mut self.0
    }
}

impl fmt::Display for DslError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(p) = self.pos {
            write!(f, ":{}:{}", p.line, p.col)?;
        }
        write!(f, ": ")?;
        if let Some(k) = &self.key_path
            && !self.message.starts_with(&format!("{k}:"))
        {
            write!(f, "{k}: ")?;
        }
        write!(f, "{}", self.message)?;
        if let Some((line_no, line, col)) = &self.snippet {
            let gutter = line_no.to_string().len();
            let start = col.saturating_sub(1).min(line.len());
            let token_len = line[start..]
                .find(|c: char| c.is_whitespace() || c == ',' || c == '}' || c == ']')
                .unwrap_or(line.len() - start)
                .max(1);
            let pad: String = line[..start]
                .chars()
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(
                f,
                "\n{:gutter$} |\n{line_no} | {line}\n{:gutter$} | {pad}{}",
                "",
                "",
                "^".repeat(token_len)
            )?;
        }
        if let Some(h) = &self.help {
            write!(f, "\nhelp: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DslError {}
