//! One module per subcommand, and the flags those that talk to the API share.

pub mod api_args;
pub mod completions;
pub mod list;
pub mod man;
pub mod reactivate;
pub mod revoke;
pub mod sandbox;
