//! One module per subcommand.

pub mod revoke;
pub mod sandbox;
