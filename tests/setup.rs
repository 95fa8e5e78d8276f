//! `evtship setup`: the template on the real engine, the Kibana and ML requests on a recording
//! server (no Kibana or Elasticsearch ML node can run here), and the index mapping against
//! every field the ML jobs and Kibana objects name.

mod common;

use common::proxy::Request;
use common::recorder::Recorder;
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// The jobs of config/ml, read independently of evtship.
fn ml_files() -> Vec<(String, Value)> {
    let mut files: Vec<_> = std::fs::read_dir(root().join("config/ml"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
            (p.file_stem().unwrap().to_string_lossy().into_owned(), v)
        })
        .collect()
}

fn kibana_objects() -> Vec<Value> {
    std::fs::read_to_string(root().join("config/kibana/evtship.ndjson"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn setup(args: &[&str], es: &str, env: &[(&str, &str)]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let args: Vec<&str> = std::iter::once("setup")
        .chain(args.iter().copied())
        .collect();
    let env: Vec<(&str, &str)> = std::iter::once(("ES_URL", es))
        .chain(env.iter().copied())
        .collect();
    let run = evtship_env(&args, dir.path(), &env);
    (run.code, run.stdout, run.stderr)
}

/// Answers like Elasticsearch 8.15 with a `licence` licence, and like Kibana's import API.
fn elastic_stand_in(licence: &'static str) -> Recorder {
    Recorder::start(move |r: &Request| {
        let path = r.target.split('?').next().unwrap_or("");
        match (r.method.as_str(), path) {
            ("GET", "/") => (
                200,
                json!({
                    "name": "es01", "cluster_name": "lab",
                    "version": {"number": "8.15.0", "build_flavor": "default"},
                    "tagline": "You Know, for Search"
                }),
            ),
            ("GET", "/_xpack") => {
                let ml = licence != "basic";
                (
                    200,
                    json!({
                        "license": {"type": licence, "mode": licence, "status": "active"},
                        "features": {"ml": {"available": ml, "enabled": true}}
                    }),
                )
            }
            ("PUT", p) if p.starts_with("/_index_template/") => {
                (200, json!({"acknowledged": true}))
            }
            ("PUT", "/_ml/anomaly_detectors/adv-image") => (
                400,
                json!({
                    "error": {"type": "resource_already_exists_exception",
                              "reason": "The job cannot be created with the Id 'adv-image'. The Id is already used."},
                    "status": 400
                }),
            ),
            ("PUT", p) if p.starts_with("/_ml/") => (200, json!({"acknowledged": true})),
            ("POST", "/api/saved_objects/_import") => (
                200,
                json!({"success": true, "successCount": 4, "successResults": []}),
            ),
            _ => (404, json!({"error": "not here"})),
        }
    })
}

/// The parts of a `multipart/form-data` body, as (headers, content).
fn multipart(r: &Request) -> Vec<(String, Vec<u8>)> {
    let ct = r.header("content-type").expect("content-type");
    assert!(ct.starts_with("multipart/form-data"), "{ct}");
    let boundary = ct
        .split("boundary=")
        .nth(1)
        .expect("boundary")
        .trim_matches('"');
    let delimiter = format!("--{boundary}");
    let body = String::from_utf8(r.body.clone()).expect("utf-8 body");
    body.split(&delimiter)
        .filter(|p| !p.trim().is_empty() && p.trim() != "--")
        .map(|p| {
            let p = p.strip_prefix("\r\n").unwrap_or(p);
            let (head, content) = p.split_once("\r\n\r\n").expect("part headers");
            let content = content.strip_suffix("\r\n").unwrap_or(content);
            (head.to_owned(), content.as_bytes().to_vec())
        })
        .collect()
}

#[test]
fn ml_and_kibana_requests_match_elastics_documented_bodies() {
    let es = elastic_stand_in("platinum");
    let kibana = elastic_stand_in("platinum");
    let env = [("ES_USER", "analyst"), ("ES_PASSWORD", "s3cret")];
    let (code, stdout, stderr) = setup(
        &["--index", "sysmon-lab", "--ml", "--kibana-url", &kibana.url],
        &es.url,
        &env,
    );
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let basic = "Basic YW5hbHlzdDpzM2NyZXQ="; // analyst:s3cret

    // Kibana: one import of config/kibana, as the saved objects import API documents it.
    let kreqs = kibana.requests();
    assert_eq!(kreqs.len(), 1, "{kreqs:?}");
    let k = &kreqs[0];
    assert_eq!(k.method, "POST");
    assert_eq!(k.target, "/api/saved_objects/_import?overwrite=true");
    assert_eq!(k.header("kbn-xsrf"), Some("true"));
    assert_eq!(k.header("authorization"), Some(basic));
    let parts = multipart(k);
    assert_eq!(parts.len(), 1);
    let (head, content) = &parts[0];
    assert!(head.contains("name=\"file\""), "{head}");
    assert!(head.contains("filename=\"evtship.ndjson\""), "{head}");
    let sent: Vec<Value> = String::from_utf8_lossy(content)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut expected = kibana_objects();
    for o in &mut expected {
        if o["type"] == "index-pattern" {
            o["attributes"]["title"] = json!("sysmon-lab");
        }
    }
    assert_eq!(sent, expected);
    let view = &sent[0];
    assert_eq!(view["type"], "index-pattern");
    assert_eq!(view["attributes"]["timeFieldName"], "@timestamp");
    let queries: BTreeSet<String> = sent
        .iter()
        .filter(|o| o["type"] == "search")
        .map(|o| {
            let source: Value = serde_json::from_str(
                o["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap();
            assert_eq!(source["query"]["language"], "kuery");
            assert_eq!(o["references"][0]["id"], view["id"]);
            assert_eq!(o["references"][0]["type"], "index-pattern");
            assert_eq!(o["references"][0]["name"], source["indexRefName"]);
            source["query"]["query"].as_str().unwrap().to_owned()
        })
        .collect();
    let wanted: BTreeSet<String> = [
        "Message : *webclnt.dll or Message : *python.exe or Message : *psexec64.exe",
        "Image : *python.exe",
        "TargetObject : *webclnt.dll",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(queries, wanted);

    // Elasticsearch: the template, then each job and datafeed, ids in the paths.
    let reqs = es.requests();
    for r in &reqs {
        assert_eq!(
            r.header("authorization"),
            Some(basic),
            "{} {}",
            r.method,
            r.target
        );
    }
    let puts: Vec<&Request> = reqs.iter().filter(|r| r.method == "PUT").collect();
    assert_eq!(puts[0].target, "/_index_template/evtship-sysmon-lab");
    let body = |r: &Request| -> Value {
        assert!(
            r.header("content-type")
                .unwrap_or("")
                .starts_with("application/json"),
            "{}",
            r.target
        );
        serde_json::from_slice(&r.body).unwrap()
    };
    let mut expected_paths = vec!["/_index_template/evtship-sysmon-lab".to_owned()];
    for (name, file) in ml_files() {
        if let Some(dfa) = file.get("data_frame_analytics") {
            let path = format!("/_ml/data_frame/analytics/{}", dfa["id"].as_str().unwrap());
            let r = puts.iter().find(|r| r.target == path).expect(&path);
            let b = body(r);
            assert!(b.get("id").is_none(), "the id goes in the path: {b}");
            assert_eq!(b["source"]["index"], json!(["sysmon-lab"]));
            assert_eq!(
                b["source"]["query"]["wildcard"]["Image.keyword"]["value"],
                "*python.exe"
            );
            assert!(b["dest"]["index"].is_string());
            assert!(b["analysis"]["outlier_detection"].is_object());
            expected_paths.push(path);
            continue;
        }
        let job_id = file["anomaly_detector"]["job_id"].as_str().unwrap();
        assert_eq!(job_id, name, "file named for its job");
        let job_path = format!("/_ml/anomaly_detectors/{job_id}");
        let job = body(puts.iter().find(|r| r.target == job_path).expect(&job_path));
        assert!(
            job.get("job_id").is_none(),
            "the id goes in the path: {job}"
        );
        assert_eq!(job["analysis_config"]["bucket_span"], "15s");
        assert_eq!(job["data_description"]["time_field"], "@timestamp");
        assert!(!job["analysis_config"]["detectors"]
            .as_array()
            .unwrap()
            .is_empty());
        let feed_id = file["datafeed"]["datafeed_id"].as_str().unwrap();
        let feed_path = format!("/_ml/datafeeds/{feed_id}");
        let feed = body(
            puts.iter()
                .find(|r| r.target == feed_path)
                .expect(&feed_path),
        );
        assert!(feed.get("datafeed_id").is_none());
        assert_eq!(feed["job_id"], job_id);
        assert_eq!(feed["indices"], json!(["sysmon-lab"]));
        assert_eq!(feed["query"], json!({"match_all": {}}));
        assert_eq!(feed["query_delay"], "60s");
        assert_eq!(feed["frequency"], "60s");
        assert_eq!(feed["scroll_size"], 1000);
        if job_id == "adv-image" {
            let d = &job["analysis_config"]["detectors"][0];
            assert_eq!(d["function"], "count");
            assert_eq!(d["by_field_name"], "Image.keyword");
            assert_eq!(d["partition_field_name"], "TargetObject.keyword");
            assert_eq!(
                job["analysis_config"]["influencers"],
                json!([
                    "Image.keyword",
                    "ImageLoaded.keyword",
                    "TargetObject.keyword"
                ])
            );
            assert_eq!(job["model_plot_config"]["enabled"], false);
            assert_eq!(job["analysis_limits"]["model_memory_limit"], "17mb");
        }
        expected_paths.push(job_path);
        expected_paths.push(feed_path);
    }
    let sent_paths: BTreeSet<String> = puts.iter().map(|r| r.target.clone()).collect();
    assert_eq!(sent_paths, expected_paths.into_iter().collect());
    // The info_content variant and the categorization job are there.
    let detectors: Vec<Value> = ml_files()
        .iter()
        .filter_map(|(_, f)| f.get("anomaly_detector").cloned())
        .collect();
    assert!(detectors.iter().any(|j| {
        let d = &j["analysis_config"]["detectors"][0];
        d["function"] == "info_content"
            && d["field_name"] == "Image.keyword"
            && d["over_field_name"] == "ImageLoaded.keyword"
            && j["analysis_limits"]["categorization_examples_limit"] == 4
    }));
    assert!(detectors
        .iter()
        .any(|j| j["analysis_config"]["categorization_field_name"].is_string()));
    // adv-image existed: said, not overwritten, not an error.
    assert!(
        stdout.contains("anomaly_detectors/adv-image exists already"),
        "{stdout}"
    );
}

#[test]
fn ml_on_a_basic_licence_is_refused_with_the_reason_and_nothing_is_created() {
    let es = elastic_stand_in("basic");
    let (code, stdout, stderr) = setup(&["--ml"], &es.url, &[]);
    assert_eq!(code, 1, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stderr.contains("machine learning is not available"),
        "{stderr}"
    );
    assert!(stderr.contains("licence is `basic`"), "{stderr}");
    assert!(!es.requests().iter().any(|r| r.target.starts_with("/_ml/")));
    // The template was still installed.
    assert!(es
        .requests()
        .iter()
        .any(|r| r.method == "PUT" && r.target == "/_index_template/evtship-logstashindex"));
}

#[test]
fn setup_on_opensearch_installs_the_template_and_says_ml_is_not_there() {
    let index = TestIndex::new("setup");
    let (code, stdout, stderr) = setup(&["--index", &index.name, "--ml"], &es_url(), &[]);
    assert_eq!(code, 1, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stderr.contains("is opensearch"), "{stderr}");
    assert!(stderr.contains("Nothing was created"), "{stderr}");
    let r = reqwest::blocking::get(format!(
        "{}/_index_template/evtship-{}",
        es_url(),
        index.name
    ))
    .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().unwrap();
    assert_eq!(
        v["index_templates"][0]["index_template"]["index_patterns"],
        json!([index.name])
    );
    // Without --ml, setup is a success.
    let (code, _, stderr) = setup(&["--index", &index.name], &es_url(), &[]);
    assert_eq!(code, 0, "{stderr}");
}

/// The type of a dotted field in a mapping (`Image.keyword` is a multi-field of `Image`).
fn field_type(properties: &Value, field: &str) -> Option<String> {
    let mut node = json!({ "properties": properties });
    for part in field.split('.') {
        node = node["properties"]
            .get(part)
            .or_else(|| node["fields"].get(part))?
            .clone();
    }
    node["type"].as_str().map(String::from)
}

#[test]
fn every_field_the_jobs_and_searches_name_is_mapped_with_the_type_they_need() {
    let index = TestIndex::new("mlfields");
    let dir = tempfile::tempdir().unwrap();
    let run = evtship(
        &["run", "pipelines/sample.toml", "--index", &index.name],
        dir.path(),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let props = index.properties();
    let need = |field: &str, types: &[&str], why: &str| {
        let t = field_type(&props, field);
        assert!(
            t.as_deref().is_some_and(|t| types.contains(&t)),
            "{field} ({why}) is {t:?} in the mapping, not one of {types:?}"
        );
    };
    for (name, file) in ml_files() {
        if let Some(dfa) = file.get("data_frame_analytics") {
            for f in dfa["analyzed_fields"]["includes"].as_array().unwrap() {
                need(
                    f.as_str().unwrap(),
                    &["long", "integer", "double", "float"],
                    &name,
                );
            }
            let q = &dfa["source"]["query"]["wildcard"];
            for f in q.as_object().unwrap().keys() {
                need(f, &["keyword"], &name);
            }
            continue;
        }
        let job = &file["anomaly_detector"];
        need(
            job["data_description"]["time_field"].as_str().unwrap(),
            &["date"],
            &name,
        );
        let ac = &job["analysis_config"];
        let mut keywords: Vec<&str> = ac["influencers"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for d in ac["detectors"].as_array().unwrap() {
            for key in ["by_field_name", "over_field_name", "partition_field_name"] {
                keywords.extend(d[key].as_str());
            }
            if d["function"] == "info_content" {
                keywords.extend(d["field_name"].as_str());
            }
        }
        for f in keywords.into_iter().filter(|f| *f != "mlcategory") {
            need(f, &["keyword"], &name);
        }
        if let Some(f) = ac["categorization_field_name"].as_str() {
            need(f, &["text", "keyword"], &name);
        }
    }
    for o in kibana_objects() {
        if let Some(f) = o["attributes"]["timeFieldName"].as_str() {
            need(f, &["date"], "the data view's time field");
        }
        if let Some(s) = o["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"].as_str() {
            let source: Value = serde_json::from_str(s).unwrap();
            let q = source["query"]["query"].as_str().unwrap();
            for term in q.split(" or ") {
                let field = term.split(':').next().unwrap().trim();
                need(field, &["text", "keyword"], q);
            }
        }
    }
}
