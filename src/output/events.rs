//! The names in the JSON log that its readers key on: the run writes them,
//! and `report` reads a run back by them, so each is spelled once.

/// The audit events that open and close a run.
pub const RUN_START: &str = "run_start";
pub const RUN_END: &str = "run_end";

/// The message of each request's attempt, and the verdicts it carries.
pub const ATTEMPT: &str = "attempt";
pub const FINAL: &str = "final";
pub const RETRY: &str = "retry";
pub const GIVE_UP: &str = "give_up";
