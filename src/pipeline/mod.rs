//! The engine every bulk operation shares: jobs cross a batched queue to
//! the dispatcher's workers (pacing, concurrency, retry), finished rows go
//! over a channel to the one collector, and signals stop it cleanly. It is
//! told what to do by plain settings (`settings`), runs in the steps of
//! `run`, and hands back a summary; it neither parses flags nor prompts.

pub mod collector;
pub mod dispatcher;
pub mod enforcement;
pub mod ledger_watch;
pub mod operation;
pub mod queue;
pub mod run;
pub mod session;
pub mod settings;
pub mod signals;
