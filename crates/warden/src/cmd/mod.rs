//! One module per subcommand.

pub mod minimize;
pub mod redact;
