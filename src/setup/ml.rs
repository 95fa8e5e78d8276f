//! The machine-learning jobs of `config/ml/`, created through Elasticsearch's ML APIs.
//!
//! Each file holds either an anomaly detection job and its datafeed
//! (`{"anomaly_detector": {...}, "datafeed": {...}}`) or a data frame analytics job
//! (`{"data_frame_analytics": {...}}`), as the bodies of Elastic's create APIs plus their ids.
//! The ids go in the request paths; the datafeeds and analytics read the pipeline's index.

use super::{files_in, read_json, SetupError};
use crate::common::IndexName;
use crate::sink::elasticsearch::{EsClient, ServerInfo};
use elasticsearch::http::Method;
use serde_json::Value;
use std::path::Path;

/// One job of `config/ml/`.
#[derive(Debug, Clone)]
pub enum MlJob {
    /// An anomaly detection job and the datafeed that feeds it.
    AnomalyDetection {
        /// The job id.
        job_id: String,
        /// The body of `PUT _ml/anomaly_detectors/{job_id}`.
        job: Value,
        /// The datafeed id.
        datafeed_id: String,
        /// The body of `PUT _ml/datafeeds/{datafeed_id}`.
        datafeed: Value,
    },
    /// A data frame analytics job.
    DataFrameAnalytics {
        /// Its id.
        id: String,
        /// The body of `PUT _ml/data_frame/analytics/{id}`.
        body: Value,
    },
}

impl MlJob {
    /// The requests that create the job, as (path, body), in order.
    pub fn requests(&self) -> Vec<(String, &Value)> {
        match self {
            Self::AnomalyDetection {
                job_id,
                job,
                datafeed_id,
                datafeed,
            } => vec![
                (format!("/_ml/anomaly_detectors/{job_id}"), job),
                (format!("/_ml/datafeeds/{datafeed_id}"), datafeed),
            ],
            Self::DataFrameAnalytics { id, body } => {
                vec![(format!("/_ml/data_frame/analytics/{id}"), body)]
            }
        }
    }
}

/// Takes the string `key` out of `obj`, or says which file lacks it.
fn take_id(obj: &mut Value, key: &str, path: &Path) -> Result<String, SetupError> {
    match obj.as_object_mut().and_then(|o| o.remove(key)) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        _ => Err(SetupError::File {
            path: path.to_owned(),
            message: format!("`{key}` (a non-empty string) is missing"),
        }),
    }
}

/// Reads every `*.json` of `dir`, pointing datafeeds and analytics at `index`.
pub fn load(dir: &Path, index: &IndexName) -> Result<Vec<MlJob>, SetupError> {
    files_in(dir, "json")?
        .into_iter()
        .map(|path| parse(read_json(&path)?, &path, index))
        .collect()
}

fn parse(mut v: Value, path: &Path, index: &IndexName) -> Result<MlJob, SetupError> {
    let indices = Value::from(vec![index.pattern()]);
    if let Some(mut body) = v.get_mut("data_frame_analytics").map(Value::take) {
        let id = take_id(&mut body, "id", path)?;
        body["source"]["index"] = indices;
        return Ok(MlJob::DataFrameAnalytics { id, body });
    }
    let (Some(mut job), Some(mut datafeed)) = (
        v.get_mut("anomaly_detector").map(Value::take),
        v.get_mut("datafeed").map(Value::take),
    ) else {
        return Err(SetupError::File {
            path: path.to_owned(),
            message: "expected `anomaly_detector` with `datafeed`, or `data_frame_analytics`"
                .into(),
        });
    };
    let job_id = take_id(&mut job, "job_id", path)?;
    let datafeed_id = take_id(&mut datafeed, "datafeed_id", path)?;
    datafeed["job_id"] = Value::from(job_id.clone());
    datafeed["indices"] = indices;
    Ok(MlJob::AnomalyDetection {
        job_id,
        job,
        datafeed_id,
        datafeed,
    })
}

/// Checks that the server runs Elasticsearch machine learning (`GET /_xpack`); the error says
/// why not otherwise.
pub async fn check_available(client: &EsClient, info: &ServerInfo) -> Result<(), SetupError> {
    if info.distribution != "elasticsearch" {
        return Err(SetupError::NoMachineLearning(format!(
            "{} is {} {}; the jobs of config/ml are Elasticsearch machine-learning jobs \
             (a platinum, enterprise or trial licence). Nothing was created.",
            client.shown_url, info.distribution, info.version
        )));
    }
    let (status, body) = client.request(Method::Get, "/_xpack", None).await?;
    let v: Value = serde_json::from_str(&body).unwrap_or_default();
    let ml = &v["features"]["ml"];
    if status == 200 && ml["available"] == true && ml["enabled"] == true {
        return Ok(());
    }
    let licence = v["license"]["type"].as_str().unwrap_or("unknown");
    let why = if status != 200 {
        format!("GET /_xpack answered HTTP {status}")
    } else if ml["enabled"] == false {
        "it is disabled on the cluster (xpack.ml.enabled: false)".to_owned()
    } else {
        format!("the cluster's licence is `{licence}`; machine learning needs platinum, enterprise or a trial")
    };
    Err(SetupError::NoMachineLearning(format!(
        "{} (Elasticsearch {}): {why}. Nothing was created.",
        client.shown_url, info.version
    )))
}

/// What happened to one create request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// Created now.
    New(String),
    /// It existed already and was left as it is.
    Existing(String),
}

/// Creates every job (and datafeed); existing ones are left untouched.
pub async fn create(client: &EsClient, jobs: &[MlJob]) -> Result<Vec<Created>, SetupError> {
    let mut done = Vec::new();
    for job in jobs {
        for (path, body) in job.requests() {
            let (status, text) = client.request(Method::Put, &path, Some(body)).await?;
            let what = path.trim_start_matches("/_ml/").to_owned();
            if (200..300).contains(&status) {
                done.push(Created::New(what));
            } else if text.contains("resource_already_exists_exception") {
                done.push(Created::Existing(what));
            } else {
                return Err(crate::sink::elasticsearch::EsError::refused(
                    &format!("PUT {path}"),
                    status,
                    &text,
                )
                .into());
            }
        }
    }
    Ok(done)
}
