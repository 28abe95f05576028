//! Diagnostics: a message at `file:line:col`, the offending line, and a hint.

use std::fmt;
use std::ops::Range;

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    /// 1-based; 0 when the problem is the file itself.
    pub line: usize,
    /// 1-based, in characters.
    pub col: usize,
    pub message: String,
    /// The text of the offending line (empty for file-level problems).
    pub source_line: String,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn file_error(file: &str, message: &str) -> Self {
        Diagnostic {
            file: file.into(),
            line: 0,
            col: 0,
            message: message.into(),
            source_line: String::new(),
            help: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: error: {}", self.file, self.message)?;
        } else {
            write!(
                f,
                "{}:{}:{}: error: {}",
                self.file, self.line, self.col, self.message
            )?;
        }
        if !self.source_line.is_empty() {
            write!(f, "\n   |     {}", self.source_line)?;
        }
        if let Some(h) = &self.help {
            write!(f, "\n   = help: {h}")?;
        }
        Ok(())
    }
}

/// All diagnostics, then a count line: what `warden config check` prints.
pub fn render(diags: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diags {
        out.push_str(&d.to_string());
        out.push('\n');
    }
    let n = diags.len();
    out.push_str(&format!(
        "{n} error{}; nothing was loaded\n",
        if n == 1 { "" } else { "s" }
    ));
    out
}

/// Keys that name where a secret lives: whatever was written as their value may be the
/// secret itself (pasted by mistake), so a diagnostic never shows it.
const SECRET_BEARING_KEYS: &[&str] = &["api_key_env"];

/// The line as shown under a diagnostic, with the value of a secret-bearing key hidden.
fn hide_secret_values(line: &str) -> String {
    for key in SECRET_BEARING_KEYS {
        if let Some(at) = line.find(key)
            && let Some(eq) = line[at + key.len()..].find('=')
        {
            let cut = at + key.len() + eq + 1;
            return format!("{} <value not shown>", line[..cut].trim_end());
        }
    }
    line.to_owned()
}

/// The file being checked: turns byte spans into positions.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub file: &'a str,
    pub text: &'a str,
}

impl<'a> Source<'a> {
    pub fn new(file: &'a str, text: &'a str) -> Self {
        Source { file, text }
    }

    /// A diagnostic at the start of `span`.
    pub fn at(&self, span: Range<usize>, message: impl Into<String>) -> Diagnostic {
        let start = span.start.min(self.text.len());
        let before = self.text.get(..start).unwrap_or_default();
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = self
            .text
            .get(line_start..start)
            .map_or(1, |s| s.chars().count() + 1);
        let source_line = self
            .text
            .get(line_start..)
            .unwrap_or_default()
            .lines()
            .next()
            .unwrap_or_default();
        Diagnostic {
            file: self.file.into(),
            line,
            col,
            message: message.into(),
            source_line: hide_secret_values(source_line),
            help: None,
        }
    }

    pub fn from_toml_error(&self, e: &toml::de::Error) -> Diagnostic {
        let message = e.message().trim().to_owned();
        match e.span() {
            Some(span) => self.at(span, message),
            None => Diagnostic::file_error(self.file, &message),
        }
    }
}
