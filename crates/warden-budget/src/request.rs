//! Request budgets: share the byte budgets of one request across its parts, then cut each part.
//!
//! Two budgets bound a request. A data type's budget covers **all** the parts of that type
//! together (two 64 KiB log parts under a 64 KiB logs budget send 64 KiB of logs, not 128),
//! and the request budget covers every part. Both are shared max-min fairly ([`share`]):
//! small parts keep everything, and the large ones split what is left equally. First each
//! type's budget is shared among the parts of that type, then the request budget among all
//! parts, each wanting at most its type share. So the bytes sent of one type never exceed
//! that type's budget, and the bytes sent in all never exceed the request budget.

use std::collections::BTreeMap;

use warden_policy::DataType;

use crate::budget::{Cut, apply};

/// Byte budgets: one per request and one per data type (shared by that type's parts).
/// `per_type[Instruction]` is the instruction budget, which `warden_minimize` applies on
/// its own: instructions are never shared into the request budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub request_bytes: usize,
    pub per_type: BTreeMap<DataType, usize>,
}

/// One content part of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part<'a> {
    pub data_type: DataType,
    pub text: &'a str,
}

/// Every part after its budget, in the order given.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestCut {
    pub cuts: Vec<Cut>,
    pub request_budget: usize,
    pub bytes_before: usize,
    pub bytes_after: usize,
}

// === impl Limits ===

impl Limits {
    /// The platform default for a whole request: about 50k tokens of telemetry.
    pub const DEFAULT_REQUEST_BYTES: usize = 200 * 1024;

    /// The platform default budget for the parts of `data_type` in one request. The
    /// instruction budget bounds the system prompt, questions, the model's earlier turns and
    /// tool definitions together: room for an agent's whole tool loop, not for telemetry
    /// relabelled as instructions.
    pub fn default_for(data_type: DataType) -> usize {
        match data_type {
            DataType::Logs | DataType::Traces | DataType::SourceCode | DataType::Instruction => {
                64 * 1024
            }
            DataType::Metrics
            | DataType::Profiles
            | DataType::ConfigMetadata
            | DataType::ClusterInfo => 32 * 1024,
        }
    }

    /// A tenant's budgets from its policy settings; zero means the default: a type's own
    /// budget, else `max_bytes_per_data_type` (telemetry types only: the instruction budget
    /// is set on its own), else the platform's.
    pub fn from_policy(b: &warden_policy::Budgets) -> Limits {
        let bytes = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        let mut limits = Limits::default();
        if b.max_request_bytes > 0 {
            limits.request_bytes = bytes(b.max_request_bytes);
        }
        if b.max_bytes_per_data_type > 0 {
            for (dt, v) in &mut limits.per_type {
                if *dt != DataType::Instruction {
                    *v = bytes(b.max_bytes_per_data_type);
                }
            }
        }
        for (dt, max) in &b.per_data_type {
            if *max > 0 {
                limits.per_type.insert(*dt, bytes(*max));
            }
        }
        limits
    }

    /// The budget of all the parts of `data_type` in one request together.
    pub fn for_type(&self, data_type: DataType) -> usize {
        self.per_type
            .get(&data_type)
            .copied()
            .unwrap_or_else(|| Limits::default_for(data_type))
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request_bytes: Limits::DEFAULT_REQUEST_BYTES,
            per_type: DataType::ALL
                .into_iter()
                .map(|d| (d, Limits::default_for(d)))
                .collect(),
        }
    }
}

// === impl RequestCut ===

/// Cuts every part of a request so the parts of each type fit that type's budget together
/// and all parts fit the request budget.
pub fn apply_request(parts: &[Part<'_>], limits: &Limits) -> RequestCut {
    // Each type's budget, shared among the parts of that type.
    let mut caps = vec![0; parts.len()];
    let mut by_type: BTreeMap<DataType, Vec<usize>> = BTreeMap::new();
    for (i, p) in parts.iter().enumerate() {
        by_type.entry(p.data_type).or_default().push(i);
    }
    for (dt, idx) in &by_type {
        let wants: Vec<usize> = idx.iter().map(|&i| parts[i].text.len()).collect();
        for (&i, got) in idx.iter().zip(share(&wants, limits.for_type(*dt))) {
            caps[i] = got;
        }
    }
    let budgets = share(&caps, limits.request_bytes);
    let cuts: Vec<Cut> = parts
        .iter()
        .zip(&budgets)
        .map(|(p, b)| apply(p.data_type, p.text, *b))
        .collect();
    RequestCut {
        request_budget: limits.request_bytes,
        bytes_before: parts.iter().map(|p| p.text.len()).sum(),
        bytes_after: cuts.iter().map(|c| c.text.len()).sum(),
        cuts,
    }
}

/// Max-min fair shares of `total` for parts wanting `wants` bytes; the shares sum to at most
/// `total`, and a part never gets more than it wants.
pub fn share(wants: &[usize], total: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..wants.len()).collect();
    order.sort_by_key(|&i| wants[i]);
    let mut out = vec![0; wants.len()];
    let mut left = total;
    for (n, &i) in order.iter().enumerate() {
        let fair = left / (wants.len() - n);
        let got = wants[i].min(fair);
        out[i] = got;
        left -= got;
    }
    out
}
