//! The subcommands of the command line, one module each; every one returns the exit code of
//! the contract ([`Exit`]) and prints its errors with their causes.

pub mod args;
pub mod check;
pub mod checkpoints;
pub mod dlq;
pub mod run;
pub mod setup;
pub mod template;

pub use evtship::pipeline::Exit;

/// Prints an error with its causes on one line.
pub fn report(e: &dyn std::error::Error) {
    eprintln!("error: {}", evtship::common::error_chain(e));
}

/// Starts the async runtime a command runs on.
pub fn runtime(threads: usize) -> Result<tokio::runtime::Runtime, Exit> {
    let built = if threads > 1 {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    };
    built.map_err(|e| {
        eprintln!("error: starting the async runtime: {e}");
        Exit::Aborted
    })
}
