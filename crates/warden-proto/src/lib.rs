//! Warden's gRPC contract, generated from `proto/` at build time.
//!
//! Packages are versioned (`warden.gateway.v1`, ...) so later changes add fields and
//! services instead of breaking callers. [`FILE_DESCRIPTOR_SET`] feeds server reflection.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

pub mod common {
    pub mod v1 {
        tonic::include_proto!("warden.common.v1");
    }
}

pub mod gateway {
    pub mod v1 {
        tonic::include_proto!("warden.gateway.v1");
    }
}

pub mod storage {
    pub mod v1 {
        tonic::include_proto!("warden.storage.v1");
    }
}

pub mod agent {
    pub mod v1 {
        tonic::include_proto!("warden.agent.v1");
    }
}

pub mod telemetry {
    pub mod v1 {
        tonic::include_proto!("warden.telemetry.v1");
    }
}

/// The encoded descriptor set of every Warden proto, for `tonic-reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("warden_descriptor");
