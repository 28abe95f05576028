//! Detection: finds the byte spans of secrets and personal data in one text.
//!
//! A line filter (`linefilter`: a small all-occurrence DFA run over four parts of a block at
//! once) names the lines that contain a rule keyword; the Aho-Corasick pass that says which
//! keyword runs on those lines only, and only lines that contain a keyword are handed to that
//! rule's regex, so clean log lines cost one filter pass and nothing else. Rules without keywords (IP addresses, card numbers) run once over the whole
//! text with a regex whose lazy DFA scans at memory speed. Multi-line shapes (PEM blocks,
//! Kubernetes Secrets) are handled by `structure`.
//!
//! Invariant: time is linear in the input (regex is a finite automaton, structure detectors
//! never revisit consumed bytes), spans are sorted, disjoint and on UTF-8 boundaries.

use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use regex::bytes::{RegexSet, RegexSetBuilder};

use crate::check;
use crate::linefilter::LineFilter;
use crate::pairs::{ASSIGN, ATTR, MAX_OBJECT, ValueForm, assign_key, object_strings, value_after};
use crate::rules::{BUILTIN_RULES, Class, KeyRule, PatternRule, RuleError, RuleSet, first_error};
use crate::structure;

/// The compiled rules. Build once, share everywhere: cloning is a reference-count bump and
/// every method takes `&self` (Send + Sync).
#[derive(Clone, Debug)]
pub struct Engine {
    inner: Arc<Inner>,
}

/// One finding: bytes `start..end` of the text hold a value of `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub kind: Kind,
}

/// The kind of a finding (`aws_access_key_id`, `email`, ...) and its class.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Kind {
    name: Arc<str>,
    class: Class,
}

#[derive(Debug)]
struct Inner {
    rules: RuleSet,
    /// All keywords of all rules; `targets[pattern_id]` says which rules a keyword wakes.
    keywords: Option<AhoCorasick>,
    /// Finds the lines that hold a keyword, so `keywords` runs only on those.
    lines: Option<LineFilter>,
    targets: Vec<Vec<Target>>,
    /// Pattern rules without keywords: run on the whole text.
    always: Vec<usize>,
    /// The `[[key]]` rules' key regexes as one set, in rule order: one search names every key
    /// rule a key matches (the first one wins) where one search per rule did; `None` if the
    /// set outgrows the size limit, and then the rules are tried one by one.
    key_set: Option<RegexSet>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Pattern(usize),
    Assign,
    Structure(usize),
}

/// Up to this many keywords the keyword automaton is a full DFA (the shipped pack has a few
/// hundred).
const MAX_DFA_KEYWORDS: usize = 2000;

/// Size of the blocks that all passes share while they are in cache.
const BLOCK: usize = 32 << 10;

/// A finding before overlaps are resolved.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Raw {
    pub start: usize,
    pub end: usize,
    pub kind: usize,
    pub priority: i32,
}

// === impl Engine ===

impl Engine {
    /// The shipped rule pack (`config/redaction-rules.toml`).
    pub fn builtin() -> Result<Engine, RuleError> {
        Engine::from_sources(&[("builtin", BUILTIN_RULES)])
    }

    /// The shipped pack plus a tenant's own rules (same format), which take precedence.
    pub fn with_tenant_rules(tenant_rules: &str) -> Result<Engine, RuleError> {
        Engine::with_tenant_rules_from("tenant rules", tenant_rules)
    }

    /// Like [`Engine::with_tenant_rules`], naming the rules' origin (a file name) in errors.
    pub fn with_tenant_rules_from(origin: &str, tenant_rules: &str) -> Result<Engine, RuleError> {
        Engine::from_sources(&[(origin, tenant_rules), ("builtin", BUILTIN_RULES)])
    }

    /// Only the given rule files, highest precedence first; for tests and for tools.
    pub fn from_sources(sources: &[(&str, &str)]) -> Result<Engine, RuleError> {
        Engine::build(sources, true)
    }

    /// The shipped pack with the keyword automaton run over every byte instead of only the
    /// lines the line filter names: the reference the filtered path must agree with.
    #[cfg(test)]
    pub(crate) fn builtin_without_line_filter() -> Result<Engine, RuleError> {
        Engine::build(&[("builtin", BUILTIN_RULES)], false)
    }

    fn build(sources: &[(&str, &str)], line_filter: bool) -> Result<Engine, RuleError> {
        let mut rules = RuleSet::default();
        for (origin, src) in sources.iter().rev() {
            rules
                .add_in_front(origin, src)
                .map_err(|errs| first_error(origin, errs))?;
        }
        let mut words: Vec<String> = Vec::new();
        let mut targets: Vec<Vec<Target>> = Vec::new();
        let mut add = |word: &str, t: Target| {
            let lw = word.to_ascii_lowercase();
            let i = match words.iter().position(|w| *w == lw) {
                Some(i) => i,
                None => {
                    words.push(lw);
                    targets.push(Vec::new());
                    words.len() - 1
                }
            };
            if !targets[i].contains(&t) {
                targets[i].push(t);
            }
        };
        let mut always = Vec::new();
        for (i, p) in rules.patterns.iter().enumerate() {
            if p.keywords.is_empty() {
                always.push(i);
            }
            for w in &p.keywords {
                add(w, Target::Pattern(i));
            }
        }
        for k in &rules.keys {
            for w in &k.keywords {
                add(w, Target::Assign);
            }
        }
        for (i, s) in rules.structures.iter().enumerate() {
            for w in &s.keywords {
                add(w, Target::Structure(i));
            }
        }
        // The scan reports every occurrence of every keyword, overlapping ones too, so a keyword
        // that starts inside another (`:5432:` in `auth:5432:`) is not hidden by it; a keyword
        // also wakes the rules of every keyword it contains ("password" wakes those of "pass").
        let closure: Vec<Vec<Target>> = words
            .iter()
            .map(|w| {
                let mut t: Vec<Target> = Vec::new();
                for (other, ts) in words.iter().zip(&targets) {
                    if memchr::memmem::find(w.as_bytes(), other.as_bytes()).is_some() {
                        for x in ts {
                            if !t.contains(x) {
                                t.push(*x);
                            }
                        }
                    }
                }
                t
            })
            .collect();
        let targets = closure;
        let keywords = if words.is_empty() {
            None
        } else {
            // A full DFA (one table load a byte) rather than the contiguous NFA the builder
            // picks for this many keywords: it runs only on the lines the filter names, and
            // there the NFA's failure-link walks cost three times the instructions. Its table
            // grows with the keywords, so a tenant pack with very many keeps the builder's
            // choice, as does one whose DFA does not build.
            let mut builder = AhoCorasickBuilder::new();
            builder
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::Standard);
            let dfa = (words.len() <= MAX_DFA_KEYWORDS)
                .then(|| {
                    builder
                        .clone()
                        .kind(Some(AhoCorasickKind::DFA))
                        .build(&words)
                        .ok()
                })
                .flatten();
            let ac = dfa
                .map_or_else(|| builder.build(&words), Ok)
                .map_err(|e| RuleError {
                    origin: "rules".into(),
                    line: 1,
                    col: 0,
                    rule: None,
                    message: format!("keywords do not compile: {e}"),
                    help: None,
                })?;
            Some(ac)
        };
        let lines = if line_filter {
            LineFilter::new(&words)
        } else {
            None
        };
        let key_set = RegexSetBuilder::new(rules.keys.iter().map(|k| k.key.as_str()))
            .unicode(false)
            .size_limit(crate::rules::REGEX_SIZE_LIMIT)
            .dfa_size_limit(crate::rules::REGEX_SIZE_LIMIT)
            .build()
            .ok();
        Ok(Engine {
            inner: Arc::new(Inner {
                rules,
                keywords,
                lines,
                targets,
                always,
                key_set,
            }),
        })
    }

    /// The kinds this engine can report, in declaration order.
    pub fn kinds(&self) -> impl Iterator<Item = Kind> + '_ {
        self.inner.rules.kinds.iter().map(|k| Kind {
            name: k.name.clone(),
            class: k.class,
        })
    }

    /// Every sensitive span in `text`: byte offsets, sorted, disjoint, on char boundaries.
    /// Overlapping findings are merged into one span named by the higher-priority rule.
    pub fn find_spans(&self, text: &str) -> Vec<Span> {
        let raw = self.find_raw(text.as_bytes());
        let merged = merge(raw);
        merged
            .into_iter()
            .map(|r| {
                let (start, end) = widen_to_chars(text, r.start, r.end);
                let k = &self.inner.rules.kinds[r.kind];
                Span {
                    start,
                    end,
                    kind: Kind {
                        name: k.name.clone(),
                        class: k.class,
                    },
                }
            })
            .collect()
    }

    fn find_raw(&self, text: &[u8]) -> Vec<Raw> {
        let mut out = Vec::new();
        let mut line = LineMarks::new(self.inner.rules.patterns.len());
        let mut structure_done = vec![0usize; self.inner.rules.structures.len()];
        // Every pass runs block by block (whole lines, about 32 KiB), so the block is still in
        // cache for the next pass; structure detectors still see the whole text.
        let mut from = 0;
        while from < text.len() {
            let to = match text.get(from + BLOCK..) {
                Some(rest) => {
                    memchr::memchr(b'\n', rest).map_or(text.len(), |i| from + BLOCK + i + 1)
                }
                None => text.len(),
            };
            self.scan_block(text, from, to, &mut line, &mut structure_done, &mut out);
            from = to;
        }
        line.flush(self, text, &mut out);
        out
    }

    fn scan_block(
        &self,
        text: &[u8],
        from: usize,
        to: usize,
        line: &mut LineMarks,
        structure_done: &mut [usize],
        out: &mut Vec<Raw>,
    ) {
        let inner = &*self.inner;
        let rules = &inner.rules;
        if let Some(ac) = &inner.keywords {
            match &inner.lines {
                Some(filter) => {
                    let mut hits = Vec::new();
                    filter.lines(text, from, to, &mut hits);
                    for (ls, le) in hits {
                        for m in ac.find_overlapping_iter(&text[ls..le]) {
                            self.on_keyword(
                                text,
                                ls + m.start(),
                                m.pattern().as_usize(),
                                line,
                                structure_done,
                                out,
                            );
                        }
                    }
                }
                None => {
                    for m in ac.find_overlapping_iter(&text[from..to]) {
                        self.on_keyword(
                            text,
                            from + m.start(),
                            m.pattern().as_usize(),
                            line,
                            structure_done,
                            out,
                        );
                    }
                }
            }
        }
        for &i in &inner.always {
            let rule = &rules.patterns[i];
            match rule.scanner {
                Some(scanner) => crate::scan::candidates(scanner, &text[from..to], &mut |s, e| {
                    let (s, e) = (from + s, from + e);
                    // The check is cheap and rejects most candidates (timestamps, ids) before
                    // any regex runs; without a regex the candidate itself is the match.
                    if rule.check != crate::rules::Check::None
                        && !check::passes(rule.check, text, s, e)
                    {
                        return;
                    }
                    match rule.regex {
                        Some(_) => self.run_pattern(rule, text, s, e, out),
                        None => {
                            // The check has passed just above: not run twice.
                            if self.accept_checked(rule, &text[s..e]) {
                                out.push(Raw {
                                    start: s,
                                    end: e,
                                    kind: rule.kind,
                                    priority: rule.priority,
                                });
                            }
                        }
                    }
                }),
                None => self.run_pattern(rule, text, from, to, out),
            }
        }
    }

    /// Acts on one keyword match at `pos`: runs a structure detector, or marks the line for the
    /// rules the keyword wakes.
    fn on_keyword(
        &self,
        text: &[u8],
        pos: usize,
        pattern: usize,
        line: &mut LineMarks,
        structure_done: &mut [usize],
        out: &mut Vec<Raw>,
    ) {
        let rules = &self.inner.rules;
        for &t in &self.inner.targets[pattern] {
            match t {
                Target::Structure(i) => {
                    if pos >= structure_done[i] {
                        let s = &rules.structures[i];
                        let done = structure::detect(s.detector, text, pos, &mut |start, end| {
                            out.push(Raw {
                                start,
                                end,
                                kind: s.kind,
                                priority: s.priority,
                            })
                        });
                        structure_done[i] = done.max(pos + 1);
                    }
                }
                Target::Pattern(_) | Target::Assign => {
                    if pos >= line.end || line.start > pos {
                        line.flush(self, text, out);
                        line.start = memchr::memrchr(b'\n', &text[..pos]).map_or(0, |i| i + 1);
                        line.end =
                            memchr::memchr(b'\n', &text[pos..]).map_or(text.len(), |i| pos + i);
                    }
                    line.mark(t);
                }
            }
        }
    }

    /// Runs one pattern rule over `text[from..to]`.
    fn run_pattern(
        &self,
        rule: &PatternRule,
        text: &[u8],
        from: usize,
        to: usize,
        out: &mut Vec<Raw>,
    ) {
        let Some(regex) = &rule.regex else { return };
        let hay = &text[from..to];
        let mut push = |s: usize, e: usize| {
            let (s, e) = (from + s, from + e);
            if self.accept_pattern(rule, text, s, e) {
                out.push(Raw {
                    start: s,
                    end: e,
                    kind: rule.kind,
                    priority: rule.priority,
                });
            }
        };
        match rule.value_group {
            Some(g) => {
                for caps in regex.captures_iter(hay) {
                    if let Some(m) = caps.get(g) {
                        push(m.start(), m.end());
                    }
                }
            }
            None => {
                for m in regex.find_iter(hay) {
                    push(m.start(), m.end());
                }
            }
        }
    }

    fn accept_pattern(&self, rule: &PatternRule, text: &[u8], s: usize, e: usize) -> bool {
        check::passes(rule.check, text, s, e) && self.accept_checked(rule, &text[s..e])
    }

    /// [`Engine::accept_pattern`] for a value whose rule check has passed.
    fn accept_checked(&self, rule: &PatternRule, v: &[u8]) -> bool {
        if v.is_empty() || v.len() < rule.min_len {
            return false;
        }
        if rule.min_entropy > 0.0 && check::entropy(v) < rule.min_entropy {
            return false;
        }
        if rule.ignore.as_ref().is_some_and(|re| re.is_match(v)) {
            return false;
        }
        if rule.value_group.is_some() && self.ignored_value(v) {
            return false;
        }
        !rule.needs_digit || check::looks_generated(v)
    }

    fn ignored_value(&self, v: &[u8]) -> bool {
        self.inner
            .rules
            .ignore_values
            .iter()
            .any(|re| re.is_match(v))
    }

    /// Scans one line for key/value pairs and reports values whose key a `[[key]]` rule claims.
    fn run_assign(&self, text: &[u8], from: usize, to: usize, out: &mut Vec<Raw>) {
        let Some(re) = ASSIGN.as_ref() else { return };
        let hay = &text[from..to];
        let mut pos = 0;
        while pos < hay.len() {
            // The match alone (no capture groups: a third of the cost); its key and form are
            // read from its bytes by `assign_key`.
            let Some(m) = re.find_at(hay, pos) else {
                break;
            };
            pos = m.end().max(pos + 1);
            let Some(((ks, ke), form)) = assign_key(m.as_bytes()) else {
                continue;
            };
            let key = (m.start() + ks, m.start() + ke);
            if let Some(ve) = self.judge_pair(text, (from, to), key, m.end(), form, out) {
                pos = pos.max(ve);
            }
        }
        if memchr::memmem::find(hay, b"value").is_some()
            && let Some(attr) = ATTR.as_ref()
        {
            for caps in attr.captures_iter(hay) {
                if let (Some(k), Some(m)) = (caps.get(1), caps.get(0)) {
                    self.judge_pair(
                        text,
                        (from, to),
                        (k.start(), k.end()),
                        m.end(),
                        ValueForm::Json,
                        out,
                    );
                }
            }
        }
    }

    /// Judges the value that starts at `hay[end]` after `key`: reports it if a `[[key]]` rule
    /// claims the key and accepts the value, and returns the value's end when it reported it.
    fn judge_pair(
        &self,
        text: &[u8],
        (from, to): (usize, usize),
        key: (usize, usize),
        end: usize,
        form: ValueForm,
        out: &mut Vec<Raw>,
    ) -> Option<usize> {
        let hay = &text[from..to];
        let rule = self.classify_key(&hay[key.0..key.1])?;
        if form == ValueForm::Json && hay.get(end) == Some(&b'{') {
            // A secret key holding an object of strings (Composer's `"bearer":{"host":"t"}`,
            // `"github-oauth":{...}`): a member named by a host, not by its own key rule,
            // is a value of that key. Members with keys of their own are judged as usual.
            // Pretty-printed, the object runs over the following lines: walk the text past
            // this line, a bounded stretch.
            let open = from + end;
            let body = &text[..(open + MAX_OBJECT).min(text.len())];
            object_strings(body, open, &mut |(ks, ke), (vs, ve)| {
                if self.classify_key(&body[ks..ke]).is_none()
                    && self.accept_value(rule, &body[vs..ve])
                {
                    out.push(Raw {
                        start: vs,
                        end: ve,
                        kind: rule.kind,
                        priority: rule.priority,
                    });
                }
            });
            return None;
        }
        let (vs, ve) = value_after(hay, end, form)?;
        if !self.accept_value(rule, &hay[vs..ve]) {
            return None;
        }
        out.push(Raw {
            start: from + vs,
            end: from + ve,
            kind: rule.kind,
            priority: rule.priority,
        });
        Some(ve)
    }

    fn classify_key(&self, raw_key: &[u8]) -> Option<&KeyRule> {
        let mut key = [0u8; 96];
        let mut n = 0;
        for &b in raw_key {
            let c = match b {
                b'"' | b'\'' | b'\\' => continue,
                b'-' if n == 0 => continue,
                b'-' | b'.' => b'_',
                _ => b.to_ascii_lowercase(),
            };
            if n < key.len() {
                key[n] = c;
                n += 1;
            }
        }
        let key = &key[..n];
        let keys = &self.inner.rules.keys;
        match &self.inner.key_set {
            Some(set) => set.matches(key).iter().next().and_then(|i| keys.get(i)),
            None => keys.iter().find(|r| r.key.is_match(key)),
        }
    }

    fn accept_value(&self, rule: &KeyRule, v: &[u8]) -> bool {
        if v.is_empty() || v.len() < rule.min_len.max(1) {
            return false;
        }
        if self.ignored_value(v) {
            return false;
        }
        if rule.min_entropy > 0.0 && check::entropy(v) < rule.min_entropy {
            return false;
        }
        if rule.needs_digit && !check::looks_generated(v) {
            return false;
        }
        !rule.ignore.as_ref().is_some_and(|re| re.is_match(v))
    }
}

/// Which rules fired on the current line; flushed when the keyword scan moves past it.
struct LineMarks {
    start: usize,
    end: usize,
    patterns: Vec<bool>,
    any: bool,
    assign: bool,
}

impl LineMarks {
    fn new(n: usize) -> Self {
        LineMarks {
            start: 0,
            end: 0,
            patterns: vec![false; n],
            any: false,
            assign: false,
        }
    }

    fn mark(&mut self, t: Target) {
        match t {
            Target::Pattern(i) => {
                self.patterns[i] = true;
                self.any = true;
            }
            Target::Assign => self.assign = true,
            Target::Structure(_) => {}
        }
    }

    fn flush(&mut self, engine: &Engine, text: &[u8], out: &mut Vec<Raw>) {
        if self.any {
            for (i, on) in self.patterns.iter_mut().enumerate() {
                if std::mem::take(on) {
                    engine.run_pattern(
                        &engine.inner.rules.patterns[i],
                        text,
                        self.start,
                        self.end,
                        out,
                    );
                }
            }
            self.any = false;
        }
        if std::mem::take(&mut self.assign) {
            engine.run_assign(text, self.start, self.end, out);
        }
    }
}

// === impl Kind ===

impl Kind {
    /// The rule pack's name for this kind, e.g. `aws_access_key_id`.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn class(&self) -> Class {
        self.class
    }

    /// Secrets are never restored; identifiers may be, when the tenant pseudonymizes.
    pub fn is_secret(&self) -> bool {
        self.class == Class::Secret
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// Sorts findings and merges overlapping ones; the merged span takes the kind of the
/// highest-priority finding (secrets outrank personal data by their rule priorities).
fn merge(mut raw: Vec<Raw>) -> Vec<Raw> {
    raw.retain(|r| r.start < r.end);
    raw.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
    let mut out: Vec<Raw> = Vec::with_capacity(raw.len());
    for r in raw {
        match out.last_mut() {
            Some(last) if r.start < last.end => {
                last.end = last.end.max(r.end);
                if r.priority > last.priority {
                    last.priority = r.priority;
                    last.kind = r.kind;
                }
            }
            _ => out.push(r),
        }
    }
    out
}

fn widen_to_chars(text: &str, mut start: usize, mut end: usize) -> (usize, usize) {
    end = end.min(text.len());
    start = start.min(end);
    while start > 0 && !text.is_char_boundary(start) {
        start -= 1;
    }
    while end < text.len() && !text.is_char_boundary(end) {
        end += 1;
    }
    (start, end)
}
