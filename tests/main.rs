//! One integration-test binary (as xsv does): every module shares `support`.

mod support;

mod completions;
mod input;
mod input_errors;
mod list;
mod nothing_lost;
mod openapi;
mod pacing;
mod parser_props;
mod revoke;
mod sandbox;
mod secrets;
mod toolkit;
