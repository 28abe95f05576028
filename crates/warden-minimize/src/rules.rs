//! Rule packs: the TOML format of `config/redaction-rules.toml`, parsed with spans and compiled.
//!
//! Rules are data so the platform team can extend the shipped pack and a tenant can add its own
//! patterns without a release. This module owns the file format and its validation; it knows
//! nothing about how rules are applied (see `detect`). Every error names the rule id and the
//! line, never a value from telemetry (rule files are configuration, not payload).

use std::fmt;
use std::ops::Range;

use regex::bytes::{Regex, RegexBuilder};
use serde::Deserialize;
use toml::Spanned;

use crate::scan::Scanner;

/// The rule pack shipped with Warden, compiled into the binary.
pub const BUILTIN_RULES: &str = include_str!("../../../config/redaction-rules.toml");

/// Largest compiled regex we accept from a rule file; keeps a bad rule from eating memory.
pub(crate) const REGEX_SIZE_LIMIT: usize = 8 << 20;

/// A rule file that cannot be loaded: which file, which line, which rule, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}:{line}: {}{message}", rule.as_ref().map(|r| format!("rule {r:?}: ")).unwrap_or_default())]
pub struct RuleError {
    /// Where the rules came from: "builtin", "tenant rules", or a file name.
    pub origin: String,
    /// 1-based line of the offending rule or field.
    pub line: usize,
    /// 1-based column (in characters) on `line` where the offending value starts; 0 when
    /// the error has no position in a file.
    pub col: usize,
    /// The rule id, when the error belongs to one rule.
    pub rule: Option<String>,
    pub message: String,
    /// How to fix it, when there is more to say than the message.
    pub help: Option<&'static str>,
}

/// Where a rule file's errors point: turns byte offsets into line and column.
struct Locate<'a> {
    origin: &'a str,
    src: &'a str,
}

impl Locate<'_> {
    fn error(
        &self,
        span: Range<usize>,
        rule: Option<&str>,
        message: String,
        help: Option<&'static str>,
    ) -> RuleError {
        RuleError {
            origin: self.origin.to_owned(),
            line: line_of(self.src, span.start),
            col: col_of(self.src, span.start),
            rule: rule.map(str::to_owned),
            message,
            help,
        }
    }
}

const TOML_HELP: &str = "rule files hold [[pattern]], [[key]] and [[structure]] tables and one [values] table; the keys each takes are described at the top of config/redaction-rules.toml";
const REGEX_HELP: &str = "rules use the Rust `regex` syntax: no look-around, no back-references; `\\b`, `\\w`, `\\d` and `(?i)` are ASCII-only";
const KIND_HELP: &str = "a kind is the label placeholders show, e.g. \"aws_access_key_id\"; a kind keeps the class it was first declared with";
const KEYWORDS_HELP: &str =
    "keywords are case-insensitive literal words of 1-64 bytes that a matching line contains";
const ID_HELP: &str =
    "every rule needs an id of its own (a tenant's ids must differ from the shipped pack's too)";

/// What one rule file holds once it loaded: the counts `warden config check` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RulePackCounts {
    pub patterns: usize,
    pub keys: usize,
    pub structures: usize,
    /// Distinct kinds the rules name.
    pub kinds: usize,
}

/// Checks one rule file on its own (not on top of the shipped pack): every problem, in line
/// order, or what the file holds. The file is also compiled into an [`crate::Engine`], so a
/// file that passes here loads.
pub fn check_rules(origin: &str, src: &str) -> Result<RulePackCounts, Vec<RuleError>> {
    let mut rules = RuleSet::default();
    rules.add(origin, src)?;
    crate::Engine::from_sources(&[(origin, src)]).map_err(|e| vec![e])?;
    Ok(RulePackCounts {
        patterns: rules.patterns.len(),
        keys: rules.keys.len(),
        structures: rules.structures.len(),
        kinds: rules.kinds.len(),
    })
}

/// What a kind of finding is, which decides its placeholder and whether it may be restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Credentials: replaced by `[SECRET:<kind>:<n>]` and never restored.
    Secret,
    /// Personal identifiers (emails, IPs, hostnames): `[<KIND>:<n>]`, restorable when the
    /// tenant turned pseudonymization on.
    Identifier,
    /// Personal data that is never restored (card numbers): `[<KIND>:<n>]`.
    Personal,
}

/// A built-in multi-line detector that a `[[structure]]` rule switches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Detector {
    Pem,
    K8sSecret,
}

/// Extra validation for a pattern match, for shapes a regex alone over-matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Check {
    #[default]
    None,
    Luhn,
    Ipv4,
    /// An IPv4 address outside the private (RFC 1918) and loopback ranges: those name
    /// machines inside a network, not people.
    PublicIpv4,
    Ipv6,
}

// === raw (serde) types ===

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPack {
    #[serde(default)]
    values: Option<RawValues>,
    #[serde(default)]
    pattern: Vec<Spanned<RawPattern>>,
    #[serde(default)]
    key: Vec<Spanned<RawKey>>,
    #[serde(default)]
    structure: Vec<Spanned<RawStructure>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawValues {
    ignore: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPattern {
    id: Spanned<String>,
    kind: Spanned<String>,
    #[serde(default)]
    class: Option<Class>,
    #[serde(default)]
    keywords: Vec<String>,
    #[serde(default)]
    regex: Option<Spanned<String>>,
    #[serde(default)]
    check: Check,
    #[serde(default)]
    min_len: usize,
    #[serde(default)]
    min_entropy: f64,
    #[serde(default)]
    ignore: Option<Spanned<String>>,
    #[serde(default)]
    needs_digit: bool,
    #[serde(default)]
    scanner: Option<Scanner>,
    #[serde(default)]
    priority: i32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    id: Spanned<String>,
    kind: Spanned<String>,
    #[serde(default)]
    class: Option<Class>,
    #[serde(default)]
    keywords: Vec<String>,
    key: Spanned<String>,
    #[serde(default)]
    min_len: usize,
    #[serde(default)]
    min_entropy: f64,
    #[serde(default)]
    needs_digit: bool,
    #[serde(default)]
    ignore: Option<Spanned<String>>,
    #[serde(default)]
    priority: i32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStructure {
    id: Spanned<String>,
    kind: Spanned<String>,
    #[serde(default)]
    class: Option<Class>,
    #[serde(default)]
    keywords: Vec<String>,
    detector: Detector,
    #[serde(default)]
    priority: i32,
}

// === compiled types ===

/// A kind of finding as named by the rules: `aws_access_key_id`, `email`, ...
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KindDef {
    pub name: std::sync::Arc<str>,
    pub class: Class,
}

#[derive(Debug)]
pub(crate) struct PatternRule {
    pub id: String,
    pub kind: usize,
    pub priority: i32,
    pub keywords: Vec<String>,
    /// `None` only for scanner rules, whose candidates are then judged by `check` alone.
    pub regex: Option<Regex>,
    pub value_group: Option<usize>,
    pub check: Check,
    pub min_len: usize,
    pub min_entropy: f64,
    pub needs_digit: bool,
    pub ignore: Option<Regex>,
    /// Built-in candidate finder; the regex then runs only inside each candidate.
    pub scanner: Option<Scanner>,
}

#[derive(Debug)]
pub(crate) struct KeyRule {
    pub id: String,
    pub kind: usize,
    pub priority: i32,
    pub keywords: Vec<String>,
    pub key: Regex,
    pub min_len: usize,
    pub min_entropy: f64,
    pub needs_digit: bool,
    pub ignore: Option<Regex>,
}

#[derive(Debug)]
pub(crate) struct StructureRule {
    pub id: String,
    pub kind: usize,
    pub priority: i32,
    pub keywords: Vec<String>,
    pub detector: Detector,
}

/// All rules of one engine, in precedence order (tenant rules before the shipped pack).
#[derive(Debug, Default)]
pub(crate) struct RuleSet {
    pub kinds: Vec<KindDef>,
    pub patterns: Vec<PatternRule>,
    pub keys: Vec<KeyRule>,
    pub structures: Vec<StructureRule>,
    pub ignore_values: Vec<Regex>,
}

// === impl RuleSet ===

impl RuleSet {
    /// Parses one rule file and puts its rules in front of those already loaded: among key
    /// rules the first whose key matches decides the kind, so later files take precedence.
    /// Loading the shipped pack first also makes a clashing id point at the tenant's line.
    /// Every problem in the file is returned, in line order.
    pub fn add_in_front(&mut self, origin: &str, src: &str) -> Result<(), Vec<RuleError>> {
        let (p, k, s) = (self.patterns.len(), self.keys.len(), self.structures.len());
        self.add(origin, src)?;
        self.patterns.rotate_left(p);
        self.keys.rotate_left(k);
        self.structures.rotate_left(s);
        Ok(())
    }

    /// Parses one rule file and adds its rules after those already loaded. A TOML error
    /// stops at the first; otherwise each rule is checked and every bad one reported.
    fn add(&mut self, origin: &str, src: &str) -> Result<(), Vec<RuleError>> {
        let at = Locate { origin, src };
        let raw: RawPack = toml::from_str(src).map_err(|e| {
            vec![at.error(
                e.span().unwrap_or(0..0),
                None,
                e.message().trim_end_matches('\n').to_owned(),
                Some(TOML_HELP),
            )]
        })?;
        let mut seen: Vec<String> = self.all_ids();
        let mut errs = Vec::new();
        if let Some(values) = raw.values
            && let Some(ignore) = values.ignore
        {
            match compile(ignore.get_ref()) {
                Ok(re) => self.ignore_values.push(re),
                Err(m) => errs.push(at.error(
                    ignore.span(),
                    None,
                    format!("values.ignore: {m}"),
                    Some(REGEX_HELP),
                )),
            }
        }
        for p in raw.pattern {
            if let Err(e) = self.add_pattern(&at, p, &mut seen) {
                errs.push(e);
            }
        }
        for k in raw.key {
            if let Err(e) = self.add_key(&at, k, &mut seen) {
                errs.push(e);
            }
        }
        for s in raw.structure {
            if let Err(e) = self.add_structure(&at, s, &mut seen) {
                errs.push(e);
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            errs.sort_by_key(|e| (e.line, e.col));
            Err(errs)
        }
    }

    fn add_pattern(
        &mut self,
        at: &Locate<'_>,
        p: Spanned<RawPattern>,
        seen: &mut Vec<String>,
    ) -> Result<(), RuleError> {
        let span = p.span();
        let p = p.into_inner();
        let id = p.id.get_ref().clone();
        let err = |span: Range<usize>, m: String, help: Option<&'static str>| {
            at.error(span, Some(&id), m, help)
        };
        check_id(&id, seen).map_err(|(m, h)| err(p.id.span(), m, h))?;
        let kind = self
            .kind(p.kind.get_ref(), p.class)
            .map_err(|m| err(p.kind.span(), m, Some(KIND_HELP)))?;
        let regex = match &p.regex {
            Some(r) => Some(compile(r.get_ref()).map_err(|m| err(r.span(), m, Some(REGEX_HELP)))?),
            None if p.scanner.is_some() => None,
            None => {
                return Err(err(
                    span,
                    "a pattern rule needs a regex (or a scanner)".into(),
                    Some(
                        "add regex = '''...''', or scanner = \"ipv4\" | \"ipv6\" | \"credit_card\" | \"email\"",
                    ),
                ));
            }
        };
        let value_group = regex
            .as_ref()
            .and_then(|r| r.capture_names().position(|n| n == Some("value")));
        let ignore = match &p.ignore {
            Some(s) => Some(
                compile(s.get_ref())
                    .map_err(|m| err(s.span(), format!("ignore: {m}"), Some(REGEX_HELP)))?,
            ),
            None => None,
        };
        check_keywords(&p.keywords).map_err(|m| err(span.clone(), m, Some(KEYWORDS_HELP)))?;
        self.patterns.push(PatternRule {
            id,
            kind,
            priority: p.priority,
            keywords: p.keywords,
            regex,
            value_group,
            check: p.check,
            min_len: p.min_len,
            min_entropy: p.min_entropy,
            needs_digit: p.needs_digit,
            ignore,
            scanner: p.scanner,
        });
        Ok(())
    }

    fn add_key(
        &mut self,
        at: &Locate<'_>,
        k: Spanned<RawKey>,
        seen: &mut Vec<String>,
    ) -> Result<(), RuleError> {
        let span = k.span();
        let k = k.into_inner();
        let id = k.id.get_ref().clone();
        let err = |span: Range<usize>, m: String, help: Option<&'static str>| {
            at.error(span, Some(&id), m, help)
        };
        check_id(&id, seen).map_err(|(m, h)| err(k.id.span(), m, h))?;
        let kind = self
            .kind(k.kind.get_ref(), k.class)
            .map_err(|m| err(k.kind.span(), m, Some(KIND_HELP)))?;
        let key = compile(k.key.get_ref()).map_err(|m| err(k.key.span(), m, Some(REGEX_HELP)))?;
        let ignore = match &k.ignore {
            Some(s) => Some(
                compile(s.get_ref())
                    .map_err(|m| err(s.span(), format!("ignore: {m}"), Some(REGEX_HELP)))?,
            ),
            None => None,
        };
        if k.keywords.is_empty() {
            return Err(err(
                span,
                "a key rule needs at least one keyword (a word every matching key contains)".into(),
                Some(KEYWORDS_HELP),
            ));
        }
        check_keywords(&k.keywords).map_err(|m| err(span.clone(), m, Some(KEYWORDS_HELP)))?;
        self.keys.push(KeyRule {
            id,
            kind,
            priority: k.priority,
            keywords: k.keywords,
            key,
            min_len: k.min_len,
            min_entropy: k.min_entropy,
            needs_digit: k.needs_digit,
            ignore,
        });
        Ok(())
    }

    fn add_structure(
        &mut self,
        at: &Locate<'_>,
        s: Spanned<RawStructure>,
        seen: &mut Vec<String>,
    ) -> Result<(), RuleError> {
        let span = s.span();
        let s = s.into_inner();
        let id = s.id.get_ref().clone();
        let err = |span: Range<usize>, m: String, help: Option<&'static str>| {
            at.error(span, Some(&id), m, help)
        };
        check_id(&id, seen).map_err(|(m, h)| err(s.id.span(), m, h))?;
        let kind = self
            .kind(s.kind.get_ref(), s.class)
            .map_err(|m| err(s.kind.span(), m, Some(KIND_HELP)))?;
        if s.keywords.is_empty() {
            return Err(err(
                span,
                "a structure rule needs at least one keyword".into(),
                Some(KEYWORDS_HELP),
            ));
        }
        check_keywords(&s.keywords).map_err(|m| err(span.clone(), m, Some(KEYWORDS_HELP)))?;
        self.structures.push(StructureRule {
            id,
            kind,
            priority: s.priority,
            keywords: s.keywords,
            detector: s.detector,
        });
        Ok(())
    }

    fn all_ids(&self) -> Vec<String> {
        let p = self.patterns.iter().map(|r| r.id.clone());
        let k = self.keys.iter().map(|r| r.id.clone());
        let s = self.structures.iter().map(|r| r.id.clone());
        p.chain(k).chain(s).collect()
    }

    /// Index of a kind, declaring it on first use. A kind keeps one class for its whole life.
    fn kind(&mut self, name: &str, class: Option<Class>) -> Result<usize, String> {
        let valid = !name.is_empty()
            && name.len() <= 48
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            return Err(format!(
                "kind {name:?} must be 1-48 characters of a-z, 0-9 and _"
            ));
        }
        if let Some(i) = self.kinds.iter().position(|k| &*k.name == name) {
            if let Some(c) = class
                && c != self.kinds[i].class
            {
                return Err(format!(
                    "kind {name:?} was already declared with class {:?}",
                    self.kinds[i].class
                ));
            }
            return Ok(i);
        }
        self.kinds.push(KindDef {
            name: name.into(),
            class: class.unwrap_or(Class::Secret),
        });
        Ok(self.kinds.len() - 1)
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Class::Secret => "secret",
            Class::Identifier => "identifier",
            Class::Personal => "personal",
        })
    }
}

fn check_id(id: &str, seen: &mut Vec<String>) -> Result<(), (String, Option<&'static str>)> {
    if id.is_empty() || id.len() > 64 {
        return Err(("rule id must be 1-64 characters".into(), None));
    }
    if seen.iter().any(|s| s == id) {
        return Err(("duplicate rule id".into(), Some(ID_HELP)));
    }
    seen.push(id.to_owned());
    Ok(())
}

fn check_keywords(keywords: &[String]) -> Result<(), String> {
    match keywords.iter().find(|k| k.is_empty() || k.len() > 64) {
        Some(_) => Err("keywords must be 1-64 bytes long".into()),
        None => Ok(()),
    }
}

/// Compiles a rule regex: bytes, ASCII semantics (so the lazy DFA never gives up on non-ASCII
/// text), bounded size.
pub(crate) fn compile(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(pattern)
        .unicode(false)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::Syntax(s) => format!(
                "invalid regex: {}",
                s.lines().last().unwrap_or("syntax error").trim()
            ),
            regex::Error::CompiledTooBig(_) => "regex is too large".to_owned(),
            other => format!("invalid regex: {other}"),
        })
}

/// The error an [`crate::Engine`] constructor reports: the first in the file (the engine
/// stops at one; `check_rules` shows them all).
pub(crate) fn first_error(origin: &str, errs: Vec<RuleError>) -> RuleError {
    errs.into_iter().next().unwrap_or_else(|| RuleError {
        origin: origin.to_owned(),
        line: 0,
        col: 0,
        rule: None,
        message: "the rules did not load".into(),
        help: None,
    })
}

/// 1-based line number of a byte offset.
pub(crate) fn line_of(src: &str, offset: usize) -> usize {
    let end = offset.min(src.len());
    src.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// 1-based column, in characters, of a byte offset on its line.
pub(crate) fn col_of(src: &str, offset: usize) -> usize {
    let end = offset.min(src.len());
    let before = src.get(..end).unwrap_or_default();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    before[line_start..].chars().count() + 1
}
