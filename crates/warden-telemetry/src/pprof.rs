//! pprof profiles (`profile.proto`, gzip-compressed or not) reduced to what an
//! investigation asks of them: per function, the *self* value (samples whose leaf frame is
//! in the function) and the *total* value (samples with the function anywhere on the
//! stack, counted once per stack, so recursion does not inflate it), per sample type.
//!
//! Storage keeps these per-function aggregates, not the raw profile, and answers "top
//! functions" by merging the aggregates of the profiles in a window. The numbers agree
//! with `go tool pprof -top` (flat and cum) on the same profile and sample type.

use std::collections::{HashMap, HashSet};
use std::io::Read;

use serde::{Deserialize, Serialize};

pub mod wire;

/// Why a profile was refused. Messages name what is wrong, never profile content.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PprofError {
    #[error("the profile is larger than {limit} bytes once decompressed")]
    TooLarge { limit: usize },
    #[error("the gzip stream is damaged or truncated ({0})")]
    Gzip(String),
    #[error("not a pprof profile (profile.proto): {0}")]
    Decode(String),
    #[error("invalid pprof profile: {0}")]
    Invalid(String),
    #[error("the profiles have no sample type {wanted:?} (they have: {have})")]
    NoSampleType { wanted: String, have: String },
}

/// One function's values in one sample type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct FunctionValue {
    pub function: String,
    /// Source file, empty when the profile does not say.
    pub file: String,
    pub self_value: i64,
    pub total_value: i64,
}

/// Every function's values in one sample type of one profile (or of several, merged).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SampleTypeSummary {
    /// e.g. "cpu", "alloc_space".
    pub name: String,
    /// e.g. "nanoseconds", "bytes".
    pub unit: String,
    /// The sum of this type's value over all samples.
    pub total: i64,
    pub functions: Vec<FunctionValue>,
}

/// A profile's summary: one entry per sample type, and which one is the default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ProfileSummary {
    /// `default_sample_type` when set, else the last sample type (as `go tool pprof`).
    pub default_type: String,
    pub types: Vec<SampleTypeSummary>,
}

/// A function's row in a top list, with shares of the total (0..1 for positive values).
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionStat {
    pub function: String,
    pub file: String,
    pub self_value: i64,
    pub total_value: i64,
    pub self_share: f64,
    pub total_share: f64,
}

/// The answer to "top functions": by self value and by total value.
#[derive(Debug, Clone, PartialEq)]
pub struct Top {
    pub sample_type: String,
    pub unit: String,
    pub total: i64,
    pub by_self: Vec<FunctionStat>,
    pub by_total: Vec<FunctionStat>,
}

// === impl ProfileSummary ===

impl ProfileSummary {
    /// The summary of `name`, or of the default type when `name` is empty.
    pub fn sample_type(&self, name: &str) -> Result<&SampleTypeSummary, PprofError> {
        let wanted = if name.is_empty() {
            &self.default_type
        } else {
            name
        };
        self.types
            .iter()
            .find(|t| t.name == wanted)
            .ok_or_else(|| PprofError::NoSampleType {
                wanted: wanted.to_owned(),
                have: self
                    .types
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// Decodes and summarizes a profile, gzip-compressed or not, refusing one larger than
/// `max_bytes` decompressed (checked while decompressing, so a gzip bomb costs no more).
pub fn parse(bytes: &[u8], max_bytes: usize) -> Result<ProfileSummary, PprofError> {
    summarize(&decode(bytes, max_bytes)?)
}

/// The profile message in `bytes` (gzip-compressed when it starts with the gzip magic).
pub fn decode(bytes: &[u8], max_bytes: usize) -> Result<wire::Profile, PprofError> {
    let raw;
    let plain: &[u8] = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .take(max_bytes as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| PprofError::Gzip(e.to_string()))?;
        raw = out;
        &raw
    } else {
        bytes
    };
    if plain.len() > max_bytes {
        return Err(PprofError::TooLarge { limit: max_bytes });
    }
    <wire::Profile as prost::Message>::decode(plain).map_err(|e| PprofError::Decode(e.to_string()))
}

/// Checks every reference of the profile and computes each sample type's per-function
/// values.
pub fn summarize(p: &wire::Profile) -> Result<ProfileSummary, PprofError> {
    let t = Tables::new(p)?;
    if p.sample_type.is_empty() {
        return Err(PprofError::Invalid("it has no sample type".into()));
    }
    let mut types: Vec<SampleTypeSummary> = Vec::with_capacity(p.sample_type.len());
    for (i, vt) in p.sample_type.iter().enumerate() {
        types.push(SampleTypeSummary {
            name: t
                .string(vt.r#type, &format!("sample_type[{i}].type"))?
                .to_owned(),
            unit: t
                .string(vt.unit, &format!("sample_type[{i}].unit"))?
                .to_owned(),
            ..Default::default()
        });
    }
    let default_type = if p.default_sample_type != 0 {
        let name = t.string(p.default_sample_type, "default_sample_type")?;
        if !types.iter().any(|s| s.name == name) {
            return Err(PprofError::Invalid(format!(
                "default_sample_type {name:?} is not one of its sample types"
            )));
        }
        name.to_owned()
    } else {
        types.last().map(|s| s.name.clone()).unwrap_or_default()
    };

    // Per function key (index into `keys`): self and total values per sample type.
    let mut keys: Vec<(String, String)> = Vec::new();
    let mut key_of: HashMap<(String, String), usize> = HashMap::new();
    let mut values: Vec<Vec<(i64, i64)>> = Vec::new();
    let n = types.len();
    let mut seen = HashSet::new();
    for (si, s) in p.sample.iter().enumerate() {
        if s.value.len() != n {
            return Err(PprofError::Invalid(format!(
                "sample[{si}] has {} values for {n} sample types",
                s.value.len()
            )));
        }
        seen.clear();
        let mut leaf = true;
        for (li, id) in s.location_id.iter().enumerate() {
            let frames = t.frames(*id).ok_or_else(|| {
                PprofError::Invalid(format!(
                    "sample[{si}].location_id[{li}] = {id} names no location"
                ))
            })?;
            for frame in frames {
                let k = match key_of.get(frame) {
                    Some(k) => *k,
                    None => {
                        keys.push(frame.clone());
                        values.push(vec![(0, 0); n]);
                        key_of.insert(frame.clone(), keys.len() - 1);
                        keys.len() - 1
                    }
                };
                let v = &mut values[k];
                if leaf {
                    for (slot, x) in v.iter_mut().zip(&s.value) {
                        slot.0 = slot.0.saturating_add(*x);
                    }
                    leaf = false;
                }
                if seen.insert(k) {
                    for (slot, x) in v.iter_mut().zip(&s.value) {
                        slot.1 = slot.1.saturating_add(*x);
                    }
                }
            }
        }
        for (ty, x) in types.iter_mut().zip(&s.value) {
            ty.total = ty.total.saturating_add(*x);
        }
    }
    for (ti, ty) in types.iter_mut().enumerate() {
        ty.functions = keys
            .iter()
            .zip(&values)
            .filter(|(_, v)| v[ti] != (0, 0))
            .map(|((function, file), v)| FunctionValue {
                function: function.clone(),
                file: file.clone(),
                self_value: v[ti].0,
                total_value: v[ti].1,
            })
            .collect();
    }
    Ok(ProfileSummary {
        default_type,
        types,
    })
}

/// Several profiles' summaries of one sample type as one (values added per function).
/// The unit is the first one's.
pub fn merge<'a>(parts: impl IntoIterator<Item = &'a SampleTypeSummary>) -> SampleTypeSummary {
    let mut out = SampleTypeSummary::default();
    let mut at: HashMap<(String, String), usize> = HashMap::new();
    for (i, part) in parts.into_iter().enumerate() {
        if i == 0 {
            out.name = part.name.clone();
            out.unit = part.unit.clone();
        }
        out.total = out.total.saturating_add(part.total);
        for f in &part.functions {
            let key = (f.function.clone(), f.file.clone());
            match at.get(&key) {
                Some(&j) => {
                    let g = &mut out.functions[j];
                    g.self_value = g.self_value.saturating_add(f.self_value);
                    g.total_value = g.total_value.saturating_add(f.total_value);
                }
                None => {
                    at.insert(key, out.functions.len());
                    out.functions.push(f.clone());
                }
            }
        }
    }
    out
}

/// The `limit` functions with the highest self values, and those with the highest total
/// values (ties: the other value, then the name).
pub fn top(summary: &SampleTypeSummary, limit: usize) -> Top {
    let share = |v: i64| {
        if summary.total == 0 {
            0.0
        } else {
            v as f64 / summary.total as f64
        }
    };
    let stat = |f: &FunctionValue| FunctionStat {
        function: f.function.clone(),
        file: f.file.clone(),
        self_value: f.self_value,
        total_value: f.total_value,
        self_share: share(f.self_value),
        total_share: share(f.total_value),
    };
    let mut by_self: Vec<&FunctionValue> = summary
        .functions
        .iter()
        .filter(|f| f.self_value != 0)
        .collect();
    by_self.sort_by(|a, b| {
        (b.self_value, b.total_value)
            .cmp(&(a.self_value, a.total_value))
            .then_with(|| a.function.cmp(&b.function))
    });
    let mut by_total: Vec<&FunctionValue> = summary.functions.iter().collect();
    by_total.sort_by(|a, b| {
        (b.total_value, b.self_value)
            .cmp(&(a.total_value, a.self_value))
            .then_with(|| a.function.cmp(&b.function))
    });
    Top {
        sample_type: summary.name.clone(),
        unit: summary.unit.clone(),
        total: summary.total,
        by_self: by_self.into_iter().take(limit).map(stat).collect(),
        by_total: by_total.into_iter().take(limit).map(stat).collect(),
    }
}

/// The profile's string table and locations, checked, as frames per location.
struct Tables<'a> {
    strings: &'a [String],
    /// Location id → its frames (function name, file), innermost first.
    frames: HashMap<u64, Vec<(String, String)>>,
}

impl<'a> Tables<'a> {
    fn new(p: &'a wire::Profile) -> Result<Tables<'a>, PprofError> {
        let strings = p.string_table.as_slice();
        if strings.first().is_some_and(|s| !s.is_empty()) {
            return Err(PprofError::Invalid(
                "string_table[0] must be the empty string".into(),
            ));
        }
        let mut t = Tables {
            strings,
            frames: HashMap::new(),
        };
        for (name, i) in [
            ("drop_frames", p.drop_frames),
            ("keep_frames", p.keep_frames),
        ] {
            t.string(i, name)?;
        }
        if let Some(pt) = &p.period_type {
            t.string(pt.r#type, "period_type.type")?;
            t.string(pt.unit, "period_type.unit")?;
        }
        for (i, c) in p.comment.iter().enumerate() {
            t.string(*c, &format!("comment[{i}]"))?;
        }
        let mut mappings = HashSet::new();
        for (i, m) in p.mapping.iter().enumerate() {
            if m.id == 0 || !mappings.insert(m.id) {
                return Err(PprofError::Invalid(format!(
                    "mapping[{i}] has id {}, which is zero or used twice",
                    m.id
                )));
            }
            t.string(m.filename, &format!("mapping[{i}].filename"))?;
            t.string(m.build_id, &format!("mapping[{i}].build_id"))?;
        }
        let mut functions: HashMap<u64, (String, String)> = HashMap::new();
        for (i, f) in p.function.iter().enumerate() {
            let name = t.string(f.name, &format!("function[{i}].name"))?;
            let system = t.string(f.system_name, &format!("function[{i}].system_name"))?;
            let file = t.string(f.filename, &format!("function[{i}].filename"))?;
            let name = if name.is_empty() { system } else { name };
            if f.id == 0 || functions.contains_key(&f.id) {
                return Err(PprofError::Invalid(format!(
                    "function[{i}] has id {}, which is zero or used twice",
                    f.id
                )));
            }
            functions.insert(f.id, (name.to_owned(), file.to_owned()));
        }
        for (i, l) in p.location.iter().enumerate() {
            if l.id == 0 || t.frames.contains_key(&l.id) {
                return Err(PprofError::Invalid(format!(
                    "location[{i}] has id {}, which is zero or used twice",
                    l.id
                )));
            }
            if l.mapping_id != 0 && !mappings.contains(&l.mapping_id) {
                return Err(PprofError::Invalid(format!(
                    "location[{i}].mapping_id = {} names no mapping",
                    l.mapping_id
                )));
            }
            let mut frames = Vec::with_capacity(l.line.len().max(1));
            for (j, line) in l.line.iter().enumerate() {
                let f = functions.get(&line.function_id).ok_or_else(|| {
                    PprofError::Invalid(format!(
                        "location[{i}].line[{j}].function_id = {} names no function",
                        line.function_id
                    ))
                })?;
                frames.push(f.clone());
            }
            if frames.is_empty() {
                // Not symbolized: the address is all there is, as pprof shows it.
                frames.push((format!("0x{:x}", l.address), String::new()));
            }
            t.frames.insert(l.id, frames);
        }
        Ok(t)
    }

    fn string(&self, index: i64, field: &str) -> Result<&'a str, PprofError> {
        if index == 0 && self.strings.is_empty() {
            return Ok("");
        }
        usize::try_from(index)
            .ok()
            .and_then(|i| self.strings.get(i))
            .map(String::as_str)
            .ok_or_else(|| {
                PprofError::Invalid(format!(
                    "{field} = {index} is outside the string table ({} strings)",
                    self.strings.len()
                ))
            })
    }

    fn frames(&self, location: u64) -> Option<&Vec<(String, String)>> {
        self.frames.get(&location)
    }
}

#[cfg(test)]
mod tests;
