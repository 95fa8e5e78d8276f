//! How a run ended: why it could not start or had to stop ([`RunError`]), what it did
//! ([`Report`]), and the exit code the contract gives it ([`Exit`]).

use crate::checkpoint::CheckpointError;
use crate::config::ConfigError;
use crate::metrics::Summary;
use crate::sink::elasticsearch::EsError;
use crate::sink::file::FileSinkError;
use crate::source::ResolveError;
use thiserror::Error;

/// The exit codes of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: every record read was delivered (indexed or already present).
    Delivered,
    /// 1: aborted by an error.
    Aborted,
    /// 2: invalid usage or configuration.
    Usage,
    /// 3: finished, but some records were dead-lettered, some input could not be read, or
    /// records were lost to damage in the spool.
    Partial,
    /// 4: a signal stopped the run before it was done (inputs not read to their end, or
    /// records left without an outcome); what was acknowledged stays so, and running again
    /// resumes after it.
    Interrupted,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Self::Delivered => 0,
            Self::Aborted => 1,
            Self::Usage => 2,
            Self::Partial => 3,
            Self::Interrupted => 4,
        }
    }
}

/// Why a run could not start or had to stop.
#[derive(Debug, Error)]
pub enum RunError {
    /// Invalid settings.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Inputs could not be resolved.
    #[error(transparent)]
    Inputs(#[from] ResolveError),
    /// Nothing matched the inputs.
    #[error("no input files matched {0}")]
    NothingToRead(String),
    /// The engine refused or could not be reached.
    #[error(transparent)]
    Engine(#[from] EsError),
    /// The output file could not be written.
    #[error(transparent)]
    Output(#[from] FileSinkError),
    /// Checkpoints could not be read or written.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A listener could not be set up.
    #[error(transparent)]
    Listen(#[from] crate::source::listen::ListenError),
    /// The spool could not be opened.
    #[error(transparent)]
    Spool(#[from] crate::source::spool::SpoolError),
    /// The Kafka consumer could not start.
    #[error(transparent)]
    KafkaInput(#[from] crate::source::kafka::consumer::KafkaStartError),
    /// The Kafka output failed.
    #[error(transparent)]
    KafkaOutput(#[from] crate::sink::kafka::KafkaSinkError),
    /// A signal stopped the run while it was starting.
    #[error("stopped by a signal before the run began")]
    Stopped,
    /// The metrics address could not be bound.
    #[error("cannot serve metrics on {addr}")]
    Metrics {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl RunError {
    /// Whether the fault is in the settings or the command line (exit code 2).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Self::Config(_)
                | Self::Inputs(_)
                | Self::NothingToRead(_)
                | Self::Metrics { .. }
                | Self::Listen(_)
        )
    }

    /// The exit code of a run that ended with this error.
    pub fn exit(&self) -> Exit {
        if matches!(self, Self::Inputs(ResolveError::Stopped) | Self::Stopped) {
            Exit::Interrupted
        } else if self.is_usage() {
            Exit::Usage
        } else {
            Exit::Aborted
        }
    }
}

/// The result of a run that got as far as reading.
#[derive(Debug)]
pub struct Report {
    /// What happened.
    pub summary: Summary,
    /// Why the run stopped early, if it did.
    pub error: Option<RunError>,
}

impl Report {
    /// The exit code per the contract.
    pub fn exit(&self) -> Exit {
        match &self.error {
            Some(e) => e.exit(),
            None if self.summary.failed > 0 => Exit::Aborted,
            None if self.summary.interrupted => Exit::Interrupted,
            None if self.summary.dead_lettered > 0
                || self.summary.input_errors > 0
                || self.summary.spool_lost > 0 =>
            {
                Exit::Partial
            }
            None => Exit::Delivered,
        }
    }
}
