//! Log templates in the manner of Drain (He et al., ICWS 2017), on raw lines of any system.
//!
//! Owns the fixed-depth parse tree: lines are routed by token count, then by their first
//! tokens, to a short list of templates; the most similar template above a threshold absorbs
//! the line and turns the tokens that differ into the wildcard `<*>`.
//! Refuses to know log formats: `preprocess` strips headers by shape and masks variables.
//! [`mine`] adds two linear passes after the tree: `merge_leading` joins templates that differ
//! only in a many-valued token the tree routed on, and `refine` splits a template on a position
//! holding a few frequent words. Both judge a position by its counts against the lines it
//! covers (`log2` of them), not by constants fitted to some logs. [`TemplateMiner`] alone is
//! the online, tree-only stage.
//!
//! Invariant: one line costs time bounded by constants (tokens per line, children per node,
//! templates searched per leaf), so mining is linear in the input size.

mod header;
mod preprocess;

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use header::ids_after_time_held;
pub use header::{HeaderModel, json_message};
use preprocess::{HeaderCut, cut_header, strip_header_with};
pub use preprocess::{WILDCARD, floor_char_boundary, mask_token, strip_header};

/// Knobs of the miner. [`MinerConfig::default`] is the one general configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct MinerConfig {
    /// Tree depth as in the paper: the length layer, `depth - 2` token layers, the leaf.
    pub depth: usize,
    /// Least share of a template's constant tokens that a line must match to join it.
    pub similarity: f64,
    /// Children per inner node before new tokens go to the `<*>` child.
    pub max_children: usize,
    /// Templates searched per leaf; past it a line joins its most similar template.
    pub max_templates_per_leaf: usize,
    /// Mask the value of every `key=value` piece, not only values with digits.
    pub mask_kv_values: bool,
}

/// Names one template within one [`TemplateMiner`]; shown as `T1`, `T2`, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TemplateId(pub u32);

/// One template: constant tokens and wildcards, and how many lines it absorbed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub id: TemplateId,
    pub tokens: Vec<String>,
    pub count: u64,
}

/// An online template miner. Feed it lines with [`TemplateMiner::add`].
#[derive(Debug, Clone)]
pub struct TemplateMiner {
    config: MinerConfig,
    roots: HashMap<usize, Node>,
    templates: Vec<Template>,
}

#[derive(Debug, Clone, Default)]
struct Node {
    children: HashMap<String, Node>,
    templates: Vec<u32>,
}

/// The outcome of [`mine`]: the final templates and the template of each input line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mined {
    /// Final templates, in order of first appearance (`T1` first).
    pub templates: Vec<Template>,
    /// The template of each input line, in input order.
    pub line_templates: Vec<TemplateId>,
}

/// Mines every line with the default configuration.
///
/// Three linear passes: the Drain tree groups the lines; templates that differ only in one
/// leading token are joined when that token's values look like a variable (many, mostly
/// one-off: `chrome.exe - … open`, `firefox.exe - … open`); a template is split on a wildcard
/// position whose words look like a closed vocabulary (few next to the lines, each
/// recurring: `VM Started`, `VM Paused`). Variables take many values, event names few.
pub fn mine<'a>(lines: impl IntoIterator<Item = &'a str>) -> Mined {
    mine_with(MinerConfig::default(), lines)
}

/// Mines every line with `config`.
pub fn mine_with<'a>(config: MinerConfig, lines: impl IntoIterator<Item = &'a str>) -> Mined {
    let mut miner = TemplateMiner::new(config);
    // A JSON line is its message field.
    let bodies: Vec<Cow<'a, str>> = lines
        .into_iter()
        .map(|line| json_message(line).unwrap_or(Cow::Borrowed(line)))
        .collect();
    // Each line's own header goes first, its guesses kept only where the file confirms them;
    // then the header the file's lines share is learned and removed (see `header`).
    let cuts: Vec<HeaderCut> = bodies.iter().map(|b| cut_header(b)).collect();
    let held = ids_after_time_held(cuts.iter().map(|c| c.found.then_some(c.ids_after_time)));
    let stripped: Vec<(usize, Cow<'a, str>)> = bodies
        .into_iter()
        .zip(cuts)
        .map(|(body, cut)| match body {
            Cow::Borrowed(line) => {
                let rest = message_of(line, cut, held);
                (header_fields(line, rest), Cow::Borrowed(rest))
            }
            Cow::Owned(msg) => {
                let rest = message_of(&msg, cut, held);
                (header_fields(&msg, rest), Cow::Owned(rest.to_owned()))
            }
        })
        .collect();
    let messages = align_short_headers(stripped);
    let model = HeaderModel::learn(messages.iter().map(|m| m.as_ref()));
    let mut rows = Vec::new();
    for msg in &messages {
        let tokens = preprocess::message_tokens(model.strip(msg), miner.config.mask_kv_values);
        let id = miner.add_tokens(&tokens);
        // One string per line, not one per token: tokens never hold whitespace.
        rows.push((id, tokens.join(" ")));
    }
    merge_leading(&mut miner, &mut rows);
    refine(&miner, &rows)
}

/// Extends the headers that the per-line rules cut short.
///
/// The per-line rules judge a field by its value (`188978561024:Worker` is id-like, `Worker`
/// is not; `ftpd:` is a component, `sshd(pam_unix):` is not), so in one file the same header
/// column is stripped on some lines and left on others. That mix hides the column from
/// [`HeaderModel::learn`], which needs one shape on nearly every line. So: the lines whose
/// per-line header has fewer fields than the longest header a real share of the file's lines
/// has (at least `1/sqrt(n)` of them) learn a model of their own, which strips at most the
/// missing number of fields from each of them.
fn align_short_headers(stripped: Vec<(usize, Cow<'_, str>)>) -> Vec<Cow<'_, str>> {
    let n = stripped.len();
    let mut share: HashMap<usize, usize> = HashMap::new();
    for (fields, _) in &stripped {
        *share.entry(*fields).or_default() += 1;
    }
    let floor = (n as f64).sqrt();
    let longest = share
        .iter()
        .filter(|(_, c)| **c as f64 >= floor)
        .map(|(f, _)| *f)
        .max()
        .unwrap_or(0);
    let short: Vec<&str> = stripped
        .iter()
        .filter(|(f, _)| *f < longest)
        .map(|(_, m)| m.as_ref())
        .collect();
    let model = HeaderModel::learn(short);
    if model.is_empty() {
        return stripped.into_iter().map(|(_, m)| m).collect();
    }
    stripped
        .into_iter()
        .map(|(f, m)| {
            if f >= longest {
                return m;
            }
            match m {
                Cow::Borrowed(b) => Cow::Borrowed(model.strip_at_most(b, longest - f)),
                Cow::Owned(o) => Cow::Owned(model.strip_at_most(&o, longest - f).to_owned()),
            }
        })
        .collect()
}

/// `line`'s message after its own header (`cut`), with at most `held` id-like fields after
/// the timestamp taken as header; cut again only when the line took more.
fn message_of(line: &str, cut: HeaderCut, held: usize) -> &str {
    if cut.ids_after_time <= held {
        &line[cut.message_at..]
    } else {
        strip_header_with(line, held)
    }
}

/// Number of whitespace-separated fields `line` loses when it is cut down to its suffix `rest`.
fn header_fields(line: &str, rest: &str) -> usize {
    line.get(..line.len().saturating_sub(rest.len()))
        .map_or(0, |h| h.split_whitespace().count())
}

/// Joins templates that differ only in one of the leading tokens the tree routes on.
///
/// The tree sends `chrome.exe - <*> open` and `firefox.exe - <*> open` to different leaves,
/// so similarity never compares them. When the templates that differ only at one such
/// position show an open vocabulary there ([`open_vocabulary`]), that position is a variable
/// (the converse of [`refine`]).
fn merge_leading(miner: &mut TemplateMiner, rows: &mut [(TemplateId, String)]) {
    let n = miner.templates.len();
    let mut target: Vec<usize> = (0..n).collect();
    let layers = miner.config.depth.saturating_sub(2);
    for p in 0..layers {
        let mut groups: HashMap<(usize, Vec<&str>), Vec<usize>> = HashMap::new();
        for (i, t) in miner.templates.iter().enumerate() {
            if target[i] != i || t.tokens.get(p).is_none_or(|tok| tok == WILDCARD) {
                continue;
            }
            let key: Vec<&str> = t
                .tokens
                .iter()
                .enumerate()
                .map(|(j, tok)| if j == p { WILDCARD } else { tok.as_str() })
                .collect();
            groups.entry((t.tokens.len(), key)).or_default().push(i);
        }
        let merges: Vec<Vec<usize>> = groups
            .into_values()
            .filter(|g| {
                let counts: Vec<u64> = g.iter().map(|&i| miner.templates[i].count).collect();
                open_vocabulary(&counts)
            })
            .collect();
        for group in merges {
            let Some((&keep, rest)) = group.split_first() else {
                continue;
            };
            for &other in rest {
                target[other] = keep;
                let count = miner.templates[other].count;
                miner.templates[keep].count += count;
            }
            if let Some(tok) = miner.templates[keep].tokens.get_mut(p) {
                *tok = WILDCARD.to_owned();
            }
        }
    }
    // Follow chains left by later layers merging an earlier survivor.
    for i in 0..n {
        let mut t = target[i];
        while target[t] != t {
            t = target[t];
        }
        target[i] = t;
    }
    for (id, _) in rows.iter_mut() {
        if let Some(&t) = target.get((id.0 as usize).saturating_sub(1)) {
            *id = TemplateId(t as u32 + 1);
        }
    }
}

/// One wildcard position of a template: its index, the words seen there, and whether it may
/// still split the template (false once a masked value or too many words turned up).
type PositionStats = (usize, Vec<(String, u64)>, bool);

/// Splits Drain groups on low-cardinality word positions; see [`mine`].
fn refine(miner: &TemplateMiner, rows: &[(TemplateId, String)]) -> Mined {
    // Per template, per wildcard position: the distinct words seen (up to the cap + 1).
    let mut stats: Vec<Vec<PositionStats>> = miner
        .templates
        .iter()
        .map(|t| {
            t.tokens
                .iter()
                .enumerate()
                .filter(|(_, tok)| *tok == WILDCARD)
                .map(|(p, _)| (p, Vec::new(), true))
                .collect()
        })
        .collect();
    // More words than a closed vocabulary on the template's lines may hold end the count.
    let bounds: Vec<usize> = miner
        .templates
        .iter()
        .map(|t| log_lines(t.count).floor() as usize)
        .collect();
    let mut wild_words: HashMap<&str, (u32, bool)> = HashMap::new();
    for (id, joined) in rows {
        let Some(slots) = stats.get_mut((id.0 as usize).saturating_sub(1)) else {
            continue;
        };
        if slots.is_empty() {
            continue;
        }
        let bound = bounds.get((id.0 as usize).saturating_sub(1));
        let tokens: Vec<&str> = joined.split(' ').collect();
        for (p, values, splittable) in slots.iter_mut() {
            let Some(tok) = tokens.get(*p) else { continue };
            if tok.contains(WILDCARD) {
                *splittable = false;
                continue;
            }
            // Which templates this word fills a wildcard of: one is an event name, more
            // is an entity (`session opened for user cyrus`, `session closed for user cyrus`).
            let seen = wild_words.entry(tok).or_insert((id.0, false));
            if seen.0 != id.0 {
                seen.1 = true;
            }
            if !*splittable {
                continue;
            }
            if let Some((_, n)) = values.iter_mut().find(|(v, _)| v == tok) {
                *n += 1;
            } else if bound.is_some_and(|&b| values.len() < b) {
                values.push(((*tok).to_owned(), 1));
            } else {
                *splittable = false;
            }
        }
    }
    let split_positions: Vec<Vec<usize>> = stats
        .iter()
        .zip(&miner.templates)
        .map(|(slots, t)| {
            slots
                .iter()
                .filter(|(_, values, ok)| {
                    *ok && closed_vocabulary(
                        &values.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
                        t.count,
                    ) && values
                        .iter()
                        .all(|(v, _)| !wild_words.get(v.as_str()).is_some_and(|w| w.1))
                })
                .map(|(p, _, _)| *p)
                .collect()
        })
        .collect();
    let mut keys: HashMap<(TemplateId, Vec<String>), TemplateId> = HashMap::new();
    let mut out = Mined::default();
    for (id, joined) in rows {
        let idx = (id.0 as usize).saturating_sub(1);
        let (Some(base), Some(positions)) = (miner.templates.get(idx), split_positions.get(idx))
        else {
            continue;
        };
        let tokens: Vec<&str> = if positions.is_empty() {
            Vec::new()
        } else {
            joined.split(' ').collect()
        };
        let values: Vec<String> = positions
            .iter()
            .filter_map(|p| tokens.get(*p).map(|t| (*t).to_owned()))
            .collect();
        let next = TemplateId(out.templates.len() as u32 + 1);
        let final_id = *keys.entry((*id, values)).or_insert(next);
        if final_id == next {
            let mut t = base.clone();
            t.id = next;
            t.count = 0;
            for p in positions {
                if let (Some(slot), Some(tok)) = (t.tokens.get_mut(*p), tokens.get(*p)) {
                    *slot = (*tok).to_owned();
                }
            }
            out.templates.push(t);
        }
        if let Some(t) = out
            .templates
            .get_mut((final_id.0 as usize).saturating_sub(1))
        {
            t.count += 1;
        }
        out.line_templates.push(final_id);
    }
    out
}

/// `log2(lines)`: the scale against which a position's words are judged. A variable's
/// distinct values grow with the lines (one per line for an id or a program name); a
/// vocabulary of event names or states does not grow, and each of its words recurs.
fn log_lines(lines: u64) -> f64 {
    (lines.max(1) as f64).log2()
}

/// Whether the words seen at one position (`counts`: lines per distinct word, of `lines`)
/// look like a closed vocabulary of event names or states: `k` words with
/// `2 <= k <= log2(lines)`, each seen on at least `k` lines. A variable's words keep
/// arriving, so some are rare next to how many there are (six user names, two of them on
/// two lines of 384); an event name recurs, and events are few next to the lines.
fn closed_vocabulary(counts: &[u64], lines: u64) -> bool {
    let k = counts.len();
    k >= 2 && k as f64 <= log_lines(lines) && counts.iter().all(|&n| n >= k as u64)
}

/// Whether the words at one position (`counts`: lines per distinct word) are a variable:
/// more distinct words than even twice the lines could hold as a closed vocabulary
/// (`log2(2 * lines)`), and words seen once on at least half the lines (Good-Turing: the
/// share of lines whose word is seen once estimates the chance that the next line brings a
/// new word, here even odds or more). Two one-off words on two lines are not yet evidence;
/// six words on eight lines, four of them once, are.
fn open_vocabulary(counts: &[u64]) -> bool {
    let lines: u64 = counts.iter().sum();
    let once = counts.iter().filter(|&&n| n == 1).count() as u64;
    counts.len() >= 2 && counts.len() as f64 > log_lines(lines) + 1.0 && 2 * once >= lines
}

// === impl MinerConfig ===

impl Default for MinerConfig {
    fn default() -> Self {
        MinerConfig {
            depth: 4,
            similarity: 0.6,
            max_children: 100,
            max_templates_per_leaf: 200,
            mask_kv_values: false,
        }
    }
}

// === impl TemplateId ===

impl fmt::Display for TemplateId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "T{}", self.0)
    }
}

// === impl Template ===

impl Template {
    /// The template as text: tokens joined by one space.
    pub fn text(&self) -> String {
        self.tokens.join(" ")
    }
}

// === impl TemplateMiner ===

impl Default for TemplateMiner {
    fn default() -> Self {
        TemplateMiner::new(MinerConfig::default())
    }
}

impl TemplateMiner {
    pub fn new(config: MinerConfig) -> Self {
        TemplateMiner {
            config,
            roots: HashMap::new(),
            templates: Vec::new(),
        }
    }

    pub fn config(&self) -> &MinerConfig {
        &self.config
    }

    /// Every template so far, in order of creation (`T1` first).
    pub fn templates(&self) -> &[Template] {
        &self.templates
    }

    pub fn template(&self, id: TemplateId) -> Option<&Template> {
        self.templates.get((id.0 as usize).checked_sub(1)?)
    }

    /// Adds one raw line (header and all) and returns the template it joined or founded.
    pub fn add(&mut self, line: &str) -> TemplateId {
        let tokens = preprocess::tokens(line, self.config.mask_kv_values);
        self.add_tokens(&tokens)
    }

    fn add_tokens(&mut self, tokens: &[String]) -> TemplateId {
        let cfg = self.config.clone();
        let Some(leaf) = leaf_for(&mut self.roots, tokens, &cfg) else {
            // Unreachable: the walk inserts every child it then looks up. Founding a
            // template outside the tree keeps the line grouped on its own instead of failing.
            let id = TemplateId(self.templates.len() as u32 + 1);
            self.templates.push(Template {
                id,
                tokens: tokens.to_vec(),
                count: 1,
            });
            return id;
        };
        let best = best_match(&self.templates, &leaf.templates, tokens, &cfg);
        match best {
            Some(idx) => {
                let t = &mut self.templates[idx as usize];
                t.count += 1;
                for (slot, tok) in t.tokens.iter_mut().zip(tokens) {
                    if slot != tok && slot != WILDCARD {
                        *slot = WILDCARD.to_owned();
                    }
                }
                t.id
            }
            None => {
                let idx = self.templates.len() as u32;
                let id = TemplateId(idx + 1);
                self.templates.push(Template {
                    id,
                    tokens: tokens.to_vec(),
                    count: 1,
                });
                leaf.templates.push(idx);
                id
            }
        }
    }
}

/// Walks (and grows) the tree to the leaf for `tokens`; allocates only for new children.
fn leaf_for<'a>(
    roots: &'a mut HashMap<usize, Node>,
    tokens: &[String],
    cfg: &MinerConfig,
) -> Option<&'a mut Node> {
    let mut node = roots.entry(tokens.len()).or_default();
    let layers = cfg.depth.saturating_sub(2).min(tokens.len());
    for tok in tokens.iter().take(layers) {
        let known = tok == WILDCARD || node.children.contains_key(tok.as_str());
        let key = if known || node.children.len() + 1 < cfg.max_children {
            tok.as_str()
        } else {
            WILDCARD
        };
        if !node.children.contains_key(key) {
            node.children.insert(key.to_owned(), Node::default());
        }
        node = node.children.get_mut(key)?;
    }
    Some(node)
}

/// The template in `leaf` most similar to `tokens`, if similar enough (or if the leaf is full).
fn best_match(
    templates: &[Template],
    leaf: &[u32],
    tokens: &[String],
    cfg: &MinerConfig,
) -> Option<u32> {
    let mut best: Option<(u32, f64, usize)> = None;
    for &idx in leaf {
        let t = &templates[idx as usize];
        let (sim, wild) = similarity(&t.tokens, tokens);
        let better = match best {
            None => true,
            Some((_, s, w)) => sim > s || (sim == s && wild > w),
        };
        if better {
            best = Some((idx, sim, wild));
        }
    }
    let (idx, sim, _) = best?;
    let full = leaf.len() >= cfg.max_templates_per_leaf;
    (sim >= cfg.similarity || full).then_some(idx)
}

/// Share of the template's constant tokens equal in the line, and the template's wildcards.
fn similarity(template: &[String], tokens: &[String]) -> (f64, usize) {
    let mut same = 0usize;
    let mut wild = 0usize;
    for (a, b) in template.iter().zip(tokens) {
        if a == WILDCARD {
            wild += 1;
        } else if a == b {
            same += 1;
        }
    }
    let constant = template.len() - wild;
    if constant == 0 {
        return (1.0, wild);
    }
    (same as f64 / constant as f64, wild)
}

#[cfg(test)]
mod tests;
