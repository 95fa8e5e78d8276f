#!/usr/bin/env python3
"""Constructs Winlogbeat 8 documents (the ECS `winlog.*` shape) from the real NXLog exports of
OTRF Security-Datasets in ../otrf (MIT), for evtship's tests.

CONSTRUCTED DATA: no Winlogbeat 8 agent wrote these lines. Each one carries the values of a real
NXLog record, laid out as Winlogbeat 8's documented fields describe (winlog.channel,
winlog.event_id as a string, winlog.computer_name, winlog.record_id, winlog.event_data.* as
strings, winlog.process.pid, winlog.process.thread.id, winlog.user.*, winlog.task,
winlog.opcode, lowercase message, event.code, host.name, agent.*, ecs.version, log.level,
@metadata as output.file writes it). Every other Sysmon record is also given the sysmon
module's `rename` treatment: some fields leave event_data for ECS (process.executable,
file.path, registry.path, user.name/user.domain, hash.*, ...), so that evtship must restore
them. Usage: construct.py > constructed.json
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = [
    "covenant_copy_smb_CreateRequest_2020-09-22145302.json",
    "covenant_persistwmi_2019-12-05044734.json",
]
ENVELOPE = {
    "@timestamp", "@version", "Channel", "EventID", "EventReceivedTime", "EventTime", "Hostname",
    "Keywords", "RecordNumber", "Severity", "SeverityValue", "SourceModuleName",
    "SourceModuleType", "SourceName", "Task", "ThreadID", "host", "port", "tags", "ProcessID",
    "ExecutionProcessID", "type", "Message", "Category", "Opcode", "OpcodeValue", "ProviderGuid",
    "Version", "AccountName", "AccountType", "Domain", "UserID", "EventTypeOrignal",
}
# What the sysmon module renames, per event id: Sysmon name -> ECS path.
RENAMES = {
    1: {"Image": "process.executable", "ProcessId": "process.pid", "ProcessGuid": "process.entity_id",
        "ParentImage": "process.parent.executable", "CommandLine": "process.command_line"},
    3: {"Image": "process.executable", "ProcessId": "process.pid", "DestinationIp": "destination.ip",
        "DestinationPort": "destination.port", "SourceIp": "source.ip", "Protocol": "network.transport"},
    7: {"Image": "process.executable", "ImageLoaded": "file.path"},
    10: {"SourceImage": "process.executable", "SourceProcessId": "process.pid",
         "SourceThreadId": "process.thread.id"},
    11: {"Image": "process.executable", "TargetFilename": "file.path"},
    12: {"Image": "process.executable", "TargetObject": "registry.path"},
    13: {"Image": "process.executable", "TargetObject": "registry.path", "Details": "registry.data.strings"},
    22: {"Image": "process.executable", "QueryName": "dns.question.name"},
}
INTS = {"process.pid", "process.thread.id", "destination.port", "source.port"}


def put(doc, path, value):
    parts = path.split(".")
    for p in parts[:-1]:
        doc = doc.setdefault(p, {})
    doc[parts[-1]] = value


def winlogbeat8(rec, rename):
    data = {k: str(v) for k, v in rec.items() if k not in ENVELOPE and not isinstance(v, (dict, list))}
    winlog = {
        "channel": rec["Channel"],
        "event_id": str(rec["EventID"]),
        "computer_name": rec["Hostname"],
        "record_id": rec["RecordNumber"],
        "provider_name": rec.get("SourceName"),
        "provider_guid": rec.get("ProviderGuid"),
        "process": {"pid": rec.get("ExecutionProcessID"), "thread": {"id": rec.get("ThreadID")}},
        "task": rec.get("Category"),
        "opcode": rec.get("Opcode"),
        "keywords": ["Audit Success"] if rec["Channel"].lower() == "security" else [],
        "api": "wineventlog",
        "event_data": data,
    }
    if rec.get("UserID"):
        winlog["user"] = {"identifier": rec["UserID"], "name": rec.get("AccountName"),
                          "domain": rec.get("Domain"), "type": rec.get("AccountType")}
    doc = {
        "@timestamp": rec["@timestamp"],
        "@metadata": {"beat": "winlogbeat", "type": "_doc", "version": "8.12.2"},
        "agent": {"type": "winlogbeat", "version": "8.12.2", "name": rec["Hostname"].split(".")[0],
                  "id": "4b2a7c1e-0000-4000-8000-000000000001",
                  "ephemeral_id": "9f0d3b2a-0000-4000-8000-000000000002"},
        "ecs": {"version": "8.0.0"},
        "host": {"name": rec["Hostname"].lower(), "os": {"family": "windows", "name": "Windows 10"}},
        "log": {"level": "information"},
        "event": {"code": str(rec["EventID"]), "kind": "event", "provider": rec.get("SourceName"),
                  "created": rec["@timestamp"]},
        "winlog": winlog,
    }
    if "Message" in rec:
        doc["message"] = rec["Message"].replace("\r\n", "\n")
    if rename:
        for name, path in RENAMES.get(rec["EventID"], {}).items():
            if name in data:
                value = data.pop(name)
                if path in INTS and value.isdigit():
                    value = int(value)
                put(doc, path, [value] if path == "registry.data.strings" else value)
    return doc


def without_nulls(v):
    if isinstance(v, dict):
        return {k: without_nulls(x) for k, x in v.items() if x is not None and x != {}}
    return v


def main():
    n = 0
    for source in SOURCES:
        with open(os.path.join(HERE, "..", "otrf", source), encoding="utf-8") as f:
            for i, line in enumerate(f):
                rec = json.loads(line)
                sysmon = rec.get("Channel") == "Microsoft-Windows-Sysmon/Operational"
                # A sample of each file: every tenth record, every Sysmon event id seen.
                if i % 10 and not (sysmon and rec["EventID"] in (1, 3, 5, 7, 11, 18, 19, 20, 21, 22)):
                    continue
                doc = without_nulls(winlogbeat8(rec, rename=sysmon and n % 2 == 0))
                print(json.dumps(doc))
                n += 1
    print(f"{n} records", file=sys.stderr)


if __name__ == "__main__":
    main()
