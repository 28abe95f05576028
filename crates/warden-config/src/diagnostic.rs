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

/// Words that, in a key's name, say its value is (or may be) a credential. `api_key_env`
/// names a variable, but what was written there may be the key itself, pasted by mistake.
const SECRET_KEY_WORDS: &[&str] = &[
    "api_key",
    "apikey",
    "api-key",
    "secret",
    "password",
    "passwd",
    "credential",
];

/// Prefixes of well-known credential formats: a value starting with one is never shown,
/// whatever key it was written under.
const CREDENTIAL_PREFIXES: &[&str] = &[
    "sk-",
    "sk_live_",
    "sk_test_",
    "rk_live_",
    "AKIA",
    "ASIA",
    "ghp_",
    "gho_",
    "ghs_",
    "ghu_",
    "ghr_",
    "github_pat_",
    "glpat-",
    "xoxb-",
    "xoxp-",
    "xoxa-",
    "xoxs-",
    "eyJ",
    "AIza",
    "npm_",
];

const NOT_SHOWN: &str = "<value not shown>";

/// Whether a key's name says its value is a credential (`api_key`, `client_secret`,
/// `ingest_token`); `max_input_tokens` and `key_file` are not.
fn names_a_secret(key: &str) -> bool {
    let key = key.trim().trim_matches(['"', '\'']).to_ascii_lowercase();
    SECRET_KEY_WORDS.iter().any(|w| key.contains(w)) || key.ends_with("token")
}

/// Whether a word of the file looks like a credential: a known prefix, or a URL with a
/// password in it (`postgres://user:pw@host`).
fn looks_like_a_credential(word: &str) -> bool {
    let word = word.trim_matches(['"', '\'', '`']);
    if CREDENTIAL_PREFIXES.iter().any(|p| word.starts_with(p)) {
        return true;
    }
    word.split_once("://").is_some_and(|(_, rest)| {
        let authority = rest.split('/').next().unwrap_or_default();
        authority
            .rsplit_once('@')
            .is_some_and(|(userinfo, _)| userinfo.contains(':'))
    })
}

/// The line as shown under a diagnostic: everything after the `=` hidden when the key names
/// a secret or a value on the line looks like one (the whole line when it has no `=`).
/// Returns whether something was hidden.
fn hide_secret_values(line: &str) -> (String, bool) {
    let eq = line.find('=');
    let secret_key = eq.is_some_and(|at| names_a_secret(&line[..at]));
    let secret_word = line
        .split(|c: char| c.is_whitespace() || "=,{}[]".contains(c))
        .any(looks_like_a_credential);
    if !secret_key && !secret_word {
        return (line.to_owned(), false);
    }
    match eq {
        Some(at) => (format!("{} {NOT_SHOWN}", line[..=at].trim_end()), true),
        None => (NOT_SHOWN.to_owned(), true),
    }
}

/// A message with quoted text hidden: all of it when the line's value was hidden (a TOML
/// type error quotes the value), else only quoted text that looks like a credential.
fn hide_in_message(message: &str, line_was_hidden: bool) -> String {
    let mut out = String::with_capacity(message.len());
    for (i, piece) in message.split('"').enumerate() {
        if i > 0 {
            out.push('"');
        }
        let quoted = i % 2 == 1;
        if quoted && (line_was_hidden || looks_like_a_credential(piece)) {
            out.push_str(NOT_SHOWN);
        } else {
            out.push_str(piece);
        }
    }
    out
}

/// What to do about an error the TOML parser or serde reported, by its kind.
fn toml_error_help(message: &str) -> &'static str {
    if message.starts_with("unknown field") {
        "an unknown key is an error, never ignored: fix its spelling or remove it (the keys accepted here are listed above)"
    } else if message.starts_with("invalid type") || message.starts_with("invalid value") {
        "write the value as the type named above: numbers and true/false without quotes, text in \"quotes\""
    } else if message.starts_with("missing field") {
        "add the key named above to this table"
    } else if message.starts_with("duplicate key") {
        "a key may appear once per table: remove one of them"
    } else {
        "this is not valid TOML here (https://toml.io): text values need \"quotes\", [tables] need their closing bracket"
    }
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
        self.at_line_col(line, col, message)
    }

    /// A diagnostic at a 1-based line and column (line 0: the file as a whole).
    pub fn at_line_col(&self, line: usize, col: usize, message: impl Into<String>) -> Diagnostic {
        let message = message.into();
        if line == 0 {
            return Diagnostic::file_error(self.file, &hide_in_message(&message, false));
        }
        let text = self.text.lines().nth(line - 1).unwrap_or_default();
        let (source_line, hidden) = hide_secret_values(text);
        Diagnostic {
            file: self.file.into(),
            line,
            col: col.max(1),
            message: hide_in_message(&message, hidden),
            source_line,
            help: None,
        }
    }

    /// A TOML syntax, type or unknown-key error, at its position, with what to do about it.
    pub fn from_toml_error(&self, e: &toml::de::Error) -> Diagnostic {
        let message = e.message().trim().to_owned();
        let help = toml_error_help(&message);
        match e.span() {
            Some(span) => self.at(span, message),
            None => Diagnostic::file_error(self.file, &hide_in_message(&message, false)),
        }
        .with_help(help)
    }
}
