//! The kinds of data a content part may carry. Each part of a request is tagged with one.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a piece of content is. `Instruction` is the platform's own prompt text; the other
/// seven are customer telemetry that may reach a model only if the tenant allowed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataType {
    Instruction,
    Logs,
    Metrics,
    Traces,
    Profiles,
    ConfigMetadata,
    ClusterInfo,
    SourceCode,
}

/// A data-type name that Warden does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown data type {0:?}; valid: instruction, logs, metrics, traces, profiles, config_metadata, cluster_info, source_code"
)]
pub struct UnknownDataType(pub String);

impl DataType {
    /// Every data type, in declaration order.
    pub const ALL: [DataType; 8] = [
        DataType::Instruction,
        DataType::Logs,
        DataType::Metrics,
        DataType::Traces,
        DataType::Profiles,
        DataType::ConfigMetadata,
        DataType::ClusterInfo,
        DataType::SourceCode,
    ];

    /// The customer telemetry types (everything but `Instruction`).
    pub const TELEMETRY: [DataType; 7] = [
        DataType::Logs,
        DataType::Metrics,
        DataType::Traces,
        DataType::Profiles,
        DataType::ConfigMetadata,
        DataType::ClusterInfo,
        DataType::SourceCode,
    ];

    /// Stable snake_case name, used in config, metrics labels and audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Instruction => "instruction",
            DataType::Logs => "logs",
            DataType::Metrics => "metrics",
            DataType::Traces => "traces",
            DataType::Profiles => "profiles",
            DataType::ConfigMetadata => "config_metadata",
            DataType::ClusterInfo => "cluster_info",
            DataType::SourceCode => "source_code",
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DataType {
    type Err = UnknownDataType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.trim().to_ascii_lowercase().replace('-', "_");
        let found = match norm.as_str() {
            "config" => Some(DataType::ConfigMetadata),
            "cluster" => Some(DataType::ClusterInfo),
            "code" => Some(DataType::SourceCode),
            other => DataType::ALL.into_iter().find(|d| d.as_str() == other),
        };
        found.ok_or_else(|| UnknownDataType(s.to_owned()))
    }
}
