//! One module per subcommand.

pub mod audit;
pub mod certs;
pub mod config;
pub mod ingest_token;
pub mod keys;
pub mod minimize;
pub mod redact;
pub mod serve;
pub mod up;
