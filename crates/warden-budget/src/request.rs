//! Request budgets: share one request's byte budget across its parts, then cut each part.
//!
//! Each part is capped by its data type's budget; when the capped sizes still exceed the
//! request budget, the request budget is shared max-min fairly ([`share`]): small parts
//! keep everything, and the large ones split what is left equally.

use std::collections::BTreeMap;

use warden_policy::DataType;

use crate::budget::{Cut, apply};

/// Byte budgets: one per request and one per data type.
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

    /// The platform default budget for one part of `data_type`.
    pub fn default_for(data_type: DataType) -> usize {
        match data_type {
            DataType::Logs | DataType::Traces | DataType::SourceCode => 64 * 1024,
            DataType::Metrics
            | DataType::Profiles
            | DataType::ConfigMetadata
            | DataType::ClusterInfo
            | DataType::Instruction => 32 * 1024,
        }
    }

    /// A tenant's budgets from its policy settings; zero means the platform default.
    pub fn from_policy(b: &warden_policy::Budgets) -> Limits {
        let mut limits = Limits::default();
        if b.max_request_bytes > 0 {
            limits.request_bytes = usize::try_from(b.max_request_bytes).unwrap_or(usize::MAX);
        }
        if b.max_bytes_per_data_type > 0 {
            let per = usize::try_from(b.max_bytes_per_data_type).unwrap_or(usize::MAX);
            for v in limits.per_type.values_mut() {
                *v = per;
            }
        }
        limits
    }

    /// The budget of one part of `data_type`, before the request budget is shared.
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

/// Cuts every part of a request so each fits its type budget and all fit the request budget.
pub fn apply_request(parts: &[Part<'_>], limits: &Limits) -> RequestCut {
    let caps: Vec<usize> = parts
        .iter()
        .map(|p| p.text.len().min(limits.for_type(p.data_type)))
        .collect();
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
