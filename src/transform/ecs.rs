//! Optional Elastic Common Schema fields (`ecs = true`), added beside the original fields and
//! following Elastic's Sysmon mapping, so that ECS-based dashboards and rules find them.
//!
//! - all events: `event.code` (the EventID), `event.provider`, `host.name` (from `Hostname`);
//!   the collector's `host` string of NXLog exports moves to `observer.hostname`, since ECS
//!   `host` is an object;
//! - Sysmon events: `event.module: sysmon`, `event.category`/`type`/`action` per EventID,
//!   `process.executable`/`name`/`pid`/`command_line`/`entity_id`/`working_directory` and
//!   `process.parent.*`, `user.name`/`domain` (from `User`), `registry.path`/`hive`/`key`/`value`
//!   and `registry.data.strings`, `file.path`/`name`/`directory`, `source.ip`/`port`,
//!   `destination.ip`/`port`, `network.transport`, `dns.question.name`.

use serde_json::{json, Map, Value};

/// ECS category, type and action of a Sysmon EventID.
fn sysmon_kind(
    id: i64,
) -> Option<(
    &'static [&'static str],
    &'static [&'static str],
    &'static str,
)> {
    Some(match id {
        1 => (&["process"], &["start"], "process-created"),
        2 => (&["file"], &["change"], "file-creation-time-changed"),
        3 => (
            &["network"],
            &["start", "connection", "protocol"],
            "network-connection-detected",
        ),
        4 => (&["process"], &["change"], "sysmon-service-state-changed"),
        5 => (&["process"], &["end"], "process-terminated"),
        6 => (&["driver"], &["start"], "driver-loaded"),
        7 => (&["process"], &["change"], "image-loaded"),
        8 => (&["process"], &["change"], "create-remote-thread"),
        9 => (&["process"], &["access"], "raw-access-read"),
        10 => (&["process"], &["access"], "process-accessed"),
        11 => (&["file"], &["creation"], "file-created"),
        12 => (
            &["configuration", "registry"],
            &["change"],
            "registry-object-added-or-deleted",
        ),
        13 => (
            &["configuration", "registry"],
            &["change"],
            "registry-value-set",
        ),
        14 => (
            &["configuration", "registry"],
            &["change"],
            "registry-object-renamed",
        ),
        15 => (&["file"], &["access"], "file-stream-created"),
        16 => (
            &["configuration"],
            &["change"],
            "sysmon-config-state-changed",
        ),
        17 => (&["file"], &["creation"], "pipe-created"),
        18 => (&["file"], &["access"], "pipe-connected"),
        19..=21 => (&["process"], &["change"], "wmi-event"),
        22 => (
            &["network"],
            &["connection", "protocol", "info"],
            "dns-query",
        ),
        23 => (&["file"], &["deletion"], "file-deleted"),
        24 => (&["process"], &["change"], "clipboard-changed"),
        25 => (&["process"], &["change"], "process-tampering"),
        26 => (&["file"], &["deletion"], "file-delete-logged"),
        _ => return None,
    })
}

fn s<'a>(doc: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    doc.get(k)
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty() && *v != "-")
}

fn int(doc: &Map<String, Value>, k: &str) -> Option<i64> {
    match doc.get(k)? {
        Value::Number(n) => n.as_i64(),
        Value::String(v) => v.trim().parse().ok(),
        _ => None,
    }
}

fn base_name(path: &str) -> &str {
    path.rsplit(['\\', '/']).next().unwrap_or(path)
}

fn dir_name(path: &str) -> Option<&str> {
    path.rfind(['\\', '/']).map(|i| &path[..i])
}

fn put(obj: &mut Map<String, Value>, path: &str, v: Value) {
    let mut cur = obj;
    let mut parts = path.split('.').peekable();
    while let Some(p) = parts.next() {
        if parts.peek().is_none() {
            cur.insert(p.to_owned(), v);
            return;
        }
        let next = cur
            .entry(p.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if !next.is_object() {
            *next = Value::Object(Map::new());
        }
        cur = next.as_object_mut().expect("object");
    }
}

/// Adds the ECS fields of one (already flat) document.
pub fn add(doc: &mut Map<String, Value>) {
    let mut ecs = Map::new();
    if let Some(Value::String(collector)) = doc.shift_remove("host") {
        put(&mut ecs, "observer.hostname", collector.into());
    }
    if let Some(id) = int(doc, "EventID") {
        put(&mut ecs, "event.code", id.to_string().into());
    }
    if let Some(p) = s(doc, "SourceName") {
        put(&mut ecs, "event.provider", p.into());
    }
    if let Some(h) = s(doc, "Hostname") {
        put(&mut ecs, "host.name", h.into());
    }
    if super::is_sysmon(doc) {
        sysmon(doc, &mut ecs);
    }
    for (k, v) in ecs {
        doc.insert(k, v);
    }
}

fn sysmon(doc: &Map<String, Value>, ecs: &mut Map<String, Value>) {
    let id = int(doc, "EventID").unwrap_or(0);
    put(ecs, "event.module", "sysmon".into());
    if let Some((category, kind, action)) = sysmon_kind(id) {
        put(ecs, "event.category", json!(category));
        put(ecs, "event.type", json!(kind));
        put(ecs, "event.action", action.into());
    }
    let image_field = if matches!(id, 8 | 10) {
        "SourceImage"
    } else {
        "Image"
    };
    if let Some(image) = s(doc, image_field) {
        put(ecs, "process.executable", image.into());
        put(ecs, "process.name", base_name(image).into());
    }
    let pid_field = if matches!(id, 8 | 10) {
        "SourceProcessId"
    } else {
        "ProcessId"
    };
    if let Some(pid) = int(doc, pid_field) {
        put(ecs, "process.pid", pid.into());
    }
    for (from, to) in [
        ("CommandLine", "process.command_line"),
        ("ProcessGuid", "process.entity_id"),
        ("CurrentDirectory", "process.working_directory"),
        ("ParentCommandLine", "process.parent.command_line"),
        ("ParentProcessGuid", "process.parent.entity_id"),
        ("QueryName", "dns.question.name"),
        ("Protocol", "network.transport"),
        ("SourceIp", "source.ip"),
        ("DestinationIp", "destination.ip"),
    ] {
        if let Some(v) = s(doc, from) {
            let ok = !to.ends_with(".ip") || v.parse::<std::net::IpAddr>().is_ok();
            if ok {
                put(ecs, to, v.into());
            }
        }
    }
    if let Some(parent) = s(doc, "ParentImage") {
        put(ecs, "process.parent.executable", parent.into());
        put(ecs, "process.parent.name", base_name(parent).into());
    }
    if let Some(pid) = int(doc, "ParentProcessId") {
        put(ecs, "process.parent.pid", pid.into());
    }
    for (from, to) in [
        ("SourcePort", "source.port"),
        ("DestinationPort", "destination.port"),
    ] {
        if let Some(port) = int(doc, from) {
            put(ecs, to, port.into());
        }
    }
    if let Some(user) = s(doc, "User") {
        match user.split_once('\\') {
            Some((domain, name)) => {
                put(ecs, "user.domain", domain.into());
                put(ecs, "user.name", name.into());
            }
            None => put(ecs, "user.name", user.into()),
        }
    }
    if let Some(path) = s(doc, "TargetFilename") {
        put(ecs, "file.path", path.into());
        put(ecs, "file.name", base_name(path).into());
        if let Some(d) = dir_name(path) {
            put(ecs, "file.directory", d.into());
        }
    }
    if let Some(target) = s(doc, "TargetObject") {
        put(ecs, "registry.path", target.into());
        let (hive, rest) = target.split_once('\\').unwrap_or((target, ""));
        put(ecs, "registry.hive", hive.into());
        if id == 13 {
            if let Some((key, value)) = rest.rsplit_once('\\') {
                put(ecs, "registry.key", key.into());
                put(ecs, "registry.value", value.into());
            }
            if let Some(details) = s(doc, "Details") {
                put(ecs, "registry.data.strings", json!([details]));
            }
        } else if !rest.is_empty() {
            put(ecs, "registry.key", rest.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysmon_process_and_registry_events() {
        let mut doc: Map<String, Value> = serde_json::from_value(json!({
            "Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 1, "Hostname": "H",
            "host": "wec", "Image": "C:\\Windows\\cmd.exe", "ProcessId": "42",
            "ParentImage": "C:\\x\\explorer.exe", "User": "DOM\\bob", "CommandLine": "cmd /c"
        }))
        .unwrap();
        add(&mut doc);
        assert_eq!(doc["event"]["code"], "1");
        assert_eq!(doc["event"]["category"], json!(["process"]));
        assert_eq!(doc["process"]["name"], "cmd.exe");
        assert_eq!(doc["process"]["pid"], 42);
        assert_eq!(doc["process"]["parent"]["name"], "explorer.exe");
        assert_eq!(doc["user"]["name"], "bob");
        assert_eq!(doc["user"]["domain"], "DOM");
        assert_eq!(doc["host"]["name"], "H");
        assert_eq!(doc["observer"]["hostname"], "wec");

        let mut reg: Map<String, Value> = serde_json::from_value(json!({
            "Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 13,
            "TargetObject": "HKLM\\SOFTWARE\\Run\\evil", "Details": "C:\\e.exe"
        }))
        .unwrap();
        add(&mut reg);
        assert_eq!(reg["registry"]["hive"], "HKLM");
        assert_eq!(reg["registry"]["key"], "SOFTWARE\\Run");
        assert_eq!(reg["registry"]["value"], "evil");
        assert_eq!(reg["registry"]["data"]["strings"], json!(["C:\\e.exe"]));
    }
}
