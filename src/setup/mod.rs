//! `evtship setup`: gets a cluster ready for the analysts before (or after) a backfill, like
//! `filebeat setup`: the index template, Kibana saved objects (`config/kibana/`) and the
//! Elasticsearch machine-learning jobs (`config/ml/`).

pub mod kibana;
pub mod ml;

use crate::config::Pipeline;
use crate::sink::elasticsearch::template::{self, Wanted};
use crate::sink::elasticsearch::{EsClient, EsError, ServerInfo};
use std::path::PathBuf;
use thiserror::Error;

/// Why a setup step failed.
#[derive(Debug, Error)]
pub enum SetupError {
    /// The engine could not be reached or refused.
    #[error(transparent)]
    Engine(#[from] EsError),
    /// A file of the configuration directory is missing or malformed.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Kibana could not be reached or refused the import.
    #[error("Kibana at {url}: {message}")]
    Kibana {
        /// Kibana's URL, credentials hidden.
        url: String,
        /// What happened.
        message: String,
    },
    /// The server has no machine learning (OpenSearch, or an Elasticsearch licence without it).
    #[error("machine learning is not available: {0}")]
    NoMachineLearning(String),
}

/// What `evtship setup` was asked to do.
#[derive(Debug, Clone)]
pub struct SetupOptions {
    /// The directory holding `kibana/` and `ml/`.
    pub config_dir: PathBuf,
    /// Kibana's URL, when saved objects are to be imported.
    pub kibana_url: Option<String>,
    /// Whether to create the machine-learning jobs.
    pub ml: bool,
}

/// Connects to the engine and installs the index template; returns what the server is.
pub async fn template(p: &Pipeline) -> Result<(EsClient, ServerInfo), SetupError> {
    let client = EsClient::new(&p.es)?;
    let info = client.server_info().await?;
    let wanted = Wanted {
        ecs: p.transform.ecs,
        data_stream: p.data_stream,
    };
    template::install(&client, &p.index, &p.template, wanted, &info).await?;
    Ok((client, info))
}

/// Reads a JSON file of the configuration directory.
fn read_json(path: &std::path::Path) -> Result<serde_json::Value, SetupError> {
    let text = std::fs::read_to_string(path).map_err(|e| SetupError::File {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| SetupError::File {
        path: path.to_owned(),
        message: format!("not JSON: {e}"),
    })
}

/// The files of `dir` ending in `.{ext}`, sorted by name.
fn files_in(dir: &std::path::Path, ext: &str) -> Result<Vec<PathBuf>, SetupError> {
    let entries = std::fs::read_dir(dir).map_err(|e| SetupError::File {
        path: dir.to_owned(),
        message: e.to_string(),
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(SetupError::File {
            path: dir.to_owned(),
            message: format!("no .{ext} file"),
        });
    }
    Ok(files)
}
