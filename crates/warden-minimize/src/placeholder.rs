//! Placeholders: one name per distinct value within a request, and the pseudonym map that can
//! put personal identifiers back into the model's answer.
//!
//! Invariant: within one [`Placeholders`], equal values get equal placeholders and different
//! values never share one (one counter numbers them all). Secrets are never stored in
//! [`Pseudonyms`], so they cannot be restored by construction.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fmt::Write as _;

use crate::detect::{Kind, Span};
use crate::rules::Class;

/// Past this many distinct values the table starts over (numbering continues, so two values
/// still never share a placeholder); keeps `warden redact` flat on multi-GB input.
const MAX_ENTRIES: usize = 1 << 20;

/// The placeholder table of one request (or one `warden redact` run).
#[derive(Debug, Default)]
pub struct Placeholders {
    next: u64,
    by_value: HashMap<String, String>,
    pseudonyms: Option<Pseudonyms>,
    counts: BTreeMap<String, u64>,
}

/// Placeholder → original identifier, kept in memory only, to restore the model's answer.
/// Holds identifiers (emails, IP addresses, hostnames) and never secrets.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Pseudonyms {
    map: HashMap<String, String>,
}

// === impl Placeholders ===

impl Placeholders {
    /// A fresh table. With `pseudonymize`, identifiers are remembered for [`Pseudonyms::restore`].
    pub fn new(pseudonymize: bool) -> Self {
        Placeholders {
            pseudonyms: pseudonymize.then(Pseudonyms::default),
            ..Placeholders::default()
        }
    }

    /// `text` with every span replaced by its placeholder. `spans` must be sorted and disjoint
    /// (as [`crate::Engine::find_spans`] returns them); others are skipped rather than trusted.
    pub fn replace(&mut self, text: &str, spans: &[Span]) -> String {
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for s in spans {
            if s.start < at || s.end > text.len() || s.start >= s.end {
                continue;
            }
            let (Some(before), Some(value)) = (text.get(at..s.start), text.get(s.start..s.end))
            else {
                continue;
            };
            out.push_str(before);
            self.push_placeholder(&s.kind, value, &mut out);
            at = s.end;
        }
        out.push_str(text.get(at..).unwrap_or_default());
        out
    }

    /// The placeholder for `value`, allocating the next number on first sight.
    pub fn placeholder(&mut self, kind: &Kind, value: &str) -> String {
        let mut out = String::new();
        self.push_placeholder(kind, value, &mut out);
        out
    }

    /// Appends the placeholder for `value` to `out`: the per-span work of [`Placeholders::replace`],
    /// which allocates only on a value's first sight (its table entry) and a kind's first count.
    fn push_placeholder(&mut self, kind: &Kind, value: &str, out: &mut String) {
        match self.counts.get_mut(kind.name()) {
            Some(n) => *n += 1,
            None => {
                self.counts.insert(kind.name().to_owned(), 1);
            }
        }
        if let Some(p) = self.by_value.get(value) {
            out.push_str(p);
            return;
        }
        if self.by_value.len() >= MAX_ENTRIES {
            self.by_value.clear();
        }
        self.next += 1;
        let mut p = String::with_capacity(kind.name().len() + 32);
        match kind.class() {
            Class::Secret => {
                p.push_str("[SECRET:");
                p.push_str(kind.name());
            }
            Class::Identifier | Class::Personal => {
                p.push('[');
                p.extend(kind.name().chars().map(|c| c.to_ascii_uppercase()));
            }
        }
        // Writing to a `String` cannot fail.
        let _ = write!(p, ":{}]", self.next);
        out.push_str(&p);
        if kind.class() == Class::Identifier
            && let Some(ps) = &mut self.pseudonyms
            && ps.map.len() < MAX_ENTRIES
        {
            ps.map.insert(p.clone(), value.to_owned());
        }
        self.by_value.insert(value.to_owned(), p);
    }

    /// Replacements made so far, by kind (counts only).
    pub fn counts(&self) -> &BTreeMap<String, u64> {
        &self.counts
    }

    /// The counts, leaving none behind (for a table that is about to be consumed).
    pub(crate) fn take_counts(&mut self) -> BTreeMap<String, u64> {
        std::mem::take(&mut self.counts)
    }

    /// The pseudonym map (empty unless the table was made with `pseudonymize`).
    pub fn into_pseudonyms(self) -> Pseudonyms {
        self.pseudonyms.unwrap_or_default()
    }
}

// === impl Pseudonyms ===

impl Pseudonyms {
    /// `answer` with every known identifier placeholder replaced by the original value.
    /// Secret placeholders and unknown ones are left as they are.
    pub fn restore(&self, answer: &str) -> String {
        self.restore_with(answer, |original, out| out.push_str(original))
    }

    /// [`Pseudonyms::restore`], writing each original with `put`.
    pub(crate) fn restore_with(&self, answer: &str, put: impl Fn(&str, &mut String)) -> String {
        if self.map.is_empty() {
            return answer.to_owned();
        }
        let mut out = String::with_capacity(answer.len());
        let mut rest = answer;
        while let Some(open) = rest.find('[') {
            out.push_str(&rest[..open]);
            let tail = &rest[open..];
            let close = tail.as_bytes().iter().take(64).position(|&b| b == b']');
            match close.and_then(|c| self.map.get(&tail[..=c]).map(|v| (c, v))) {
                Some((c, original)) => {
                    put(original, &mut out);
                    rest = &tail[c + 1..];
                }
                None => {
                    out.push('[');
                    rest = &tail[1..];
                }
            }
        }
        out.push_str(rest);
        out
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Never prints the original values: they are personal data.
impl fmt::Debug for Pseudonyms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pseudonyms")
            .field("len", &self.map.len())
            .finish()
    }
}
