//! One module per subcommand.

pub mod minimize;
