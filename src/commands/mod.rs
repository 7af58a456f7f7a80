//! One module per subcommand.

pub mod reactivate;
pub mod revoke;
pub mod sandbox;
