//! `evtship setup`: the index template, Kibana saved objects and ML jobs. Every step asked for
//! is tried; the exit code is 2 for unusable files, 1 when a step failed, else 0.

use super::{report, runtime, Exit};
use evtship::config::{OutputTarget, Pipeline};
use evtship::setup::{kibana, ml, SetupError, SetupOptions};
use evtship::sink::elasticsearch::{EsClient, ServerInfo};
use serde_json::Value;

/// Runs the steps `opts` asks for on the pipeline's engine.
pub fn run(p: &Pipeline, opts: &SetupOptions) -> Exit {
    if p.output != OutputTarget::Elasticsearch {
        eprintln!(
            "error: setup needs an Elasticsearch or OpenSearch output, not {}",
            p.output
        );
        return Exit::Usage;
    }
    // Every file is read before anything is sent, so a typo changes nothing on the cluster.
    let (objects, jobs) = match load_files(p, opts) {
        Ok(f) => f,
        Err(e) => {
            report(&e);
            return Exit::Usage;
        }
    };
    let runtime = match runtime(1) {
        Ok(r) => r,
        Err(exit) => return exit,
    };
    runtime.block_on(async {
        let (client, info) = match evtship::setup::template(p).await {
            Ok(c) => c,
            Err(e) => {
                report(&e);
                return Exit::Aborted;
            }
        };
        println!(
            "index template {} installed for index {} on {} {} at {}",
            p.template_name(),
            p.index,
            info.distribution,
            info.version,
            client.shown_url
        );
        let mut exit = Exit::Delivered;
        if let (Some(url), Some(objects)) = (&opts.kibana_url, &objects) {
            if !import_objects(p, opts, url, objects).await {
                exit = Exit::Aborted;
            }
        }
        if let Some(jobs) = &jobs {
            if !create_jobs(&client, &info, jobs).await {
                exit = Exit::Aborted;
            }
        }
        exit
    })
}

type Files = (Option<Vec<Value>>, Option<Vec<ml::MlJob>>);

fn load_files(p: &Pipeline, opts: &SetupOptions) -> Result<Files, SetupError> {
    let objects = opts
        .kibana_url
        .as_ref()
        .map(|_| kibana::load(&opts.config_dir.join("kibana"), &p.index))
        .transpose()?;
    let jobs = opts
        .ml
        .then(|| ml::load(&opts.config_dir.join("ml"), &p.index))
        .transpose()?;
    Ok((objects, jobs))
}

async fn import_objects(p: &Pipeline, opts: &SetupOptions, url: &str, objects: &[Value]) -> bool {
    match kibana::import(url, &p.es, objects).await {
        Ok(n) => {
            println!(
                "Kibana: imported {n} saved objects from {} (data view {} on @timestamp, saved searches)",
                opts.config_dir.join("kibana").display(),
                p.index.pattern()
            );
            true
        }
        Err(e) => {
            report(&e);
            false
        }
    }
}

async fn create_jobs(client: &EsClient, info: &ServerInfo, jobs: &[ml::MlJob]) -> bool {
    let created = match ml::check_available(client, info).await {
        Ok(()) => ml::create(client, jobs).await,
        Err(e) => Err(e),
    };
    match created {
        Ok(done) => {
            for d in done {
                match d {
                    ml::Created::New(what) => println!("ML: created {what}"),
                    ml::Created::Existing(what) => {
                        println!("ML: {what} exists already; left as it is")
                    }
                }
            }
            true
        }
        Err(e @ SetupError::NoMachineLearning(_)) => {
            report(&e);
            false
        }
        Err(e) => {
            eprintln!(
                "error: creating the ML jobs: {}",
                evtship::common::error_chain(&e)
            );
            false
        }
    }
}
