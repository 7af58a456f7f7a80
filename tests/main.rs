//! One integration-test binary (as xsv does): every module shares `support`.

mod support;

mod answers;
mod completions;
mod dialects;
mod enforcement;
mod engine;
mod hostile;
mod input;
mod input_errors;
mod ledger;
mod list;
mod metrics;
mod nothing_lost;
mod openapi;
mod outputs;
mod pacing;
mod parser_props;
mod report;
mod revoke;
mod sandbox;
mod secrets;
mod select;
mod tls;
mod token_file;
mod toolkit;
mod usage;
mod verify;
mod zones;
