//! One module per subcommand.

pub mod certs;
pub mod serve;
pub mod up;
