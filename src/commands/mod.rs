//! One module per subcommand.

pub mod revoke;
