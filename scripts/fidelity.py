#!/usr/bin/env python3
"""Fidelity check: every record of every file in a folder reaches one index, nothing rejected,
and counts per Channel and per EventID equal those computed here, independently of evtship's
own reading and transformation code.

JSON lines (plain, .gz, .zip members, .tar.gz members) are read with Python's standard library;
.evtx files with the `evtx` package from PyPI (its own build of the parser). Where that parser
reports errors on a damaged .evtx file, evtship (a newer parser) may recover more records: the
surplus must then be exactly what evtship read beyond the independent count for those files.

Usage: fidelity.py DIR ES_URL INDEX SUMMARY_JSON   (run evtship first; see scripts/check-fidelity)
       fidelity.py --expected DIR                  (print the independent counts only)
"""
import collections
import io
import json
import os
import sys
import tarfile
import urllib.request
import zipfile
import zlib

JSON_EXT = (".json", ".ndjson", ".jsonl", ".log")
MISSING = "__missing__"  # the bucket of documents without the field


def channel_and_id(d):
    """Channel and EventID as each dialect writes them: NXLog/PowerShell/Azure, Winlogbeat 6.x
    (log_name, event_id), Winlogbeat 7+ and Elastic Agent (winlog.channel, winlog.event_id, or
    event.code)."""
    winlog = d.get("winlog") if isinstance(d.get("winlog"), dict) else {}
    event = d.get("event") if isinstance(d.get("event"), dict) else {}
    channel = d.get("Channel") or d.get("log_name") or winlog.get("channel")
    eid = d.get("EventID", d.get("event_id", winlog.get("event_id", event.get("code"))))
    if isinstance(eid, str) and eid.strip().isdigit():
        eid = int(eid)
    return channel, eid


def gunzip(raw):
    """Every gzip member of `raw`; bytes after the last one that start no member are ignored
    (the upstream OTRF .tar.gz files end with one stray byte)."""
    out = []
    while raw[:2] == b"\x1f\x8b":
        d = zlib.decompressobj(wbits=31)
        out.append(d.decompress(raw))
        raw = d.unused_data
    return b"".join(out)


def json_lines(stream):
    for raw in stream:
        line = raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw
        if line.strip():
            yield json.loads(line)


def records_of_json_file(path):
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] == b"\x1f\x8b":
        data = gunzip(open(path, "rb").read())
        if len(data) > 262 and data[257:262] == b"ustar":
            with tarfile.open(fileobj=io.BytesIO(data)) as t:
                for m in t.getmembers():
                    name = os.path.basename(m.name)
                    if m.isfile() and name.lower().endswith(JSON_EXT) and not name.startswith("._"):
                        yield from json_lines(t.extractfile(m))
        else:
            yield from json_lines(io.BytesIO(data))
    elif head == b"PK\x03\x04":
        with zipfile.ZipFile(path) as z:
            for n in z.namelist():
                base = os.path.basename(n)
                if "__MACOSX" in n or base.startswith("._") or not base.lower().endswith(JSON_EXT):
                    continue
                with z.open(n) as member:
                    yield from json_lines(member)
    else:
        with open(path, "rb") as f:
            yield from json_lines(f)


def evtx_records(path):
    """(records, errors) from the independent parser."""
    import evtx  # PyPI package `evtx`

    out, errors = [], 0
    it = evtx.PyEvtxParser(path).records_json()
    while True:
        try:
            r = next(it)
        except StopIteration:
            break
        except Exception:
            errors += 1
            continue
        system = json.loads(r["data"])["Event"]["System"]
        eid = system["EventID"]
        if isinstance(eid, dict):
            eid = eid.get("#text")
        if isinstance(eid, str) and eid.strip().isdigit():
            eid = int(eid)
        out.append((system.get("Channel"), eid))
    return out, errors


def expected(folder):
    channels, ids = collections.Counter(), collections.Counter()
    per_file, damaged = {}, {}
    for root, _, files in os.walk(folder):
        for name in sorted(files):
            path = os.path.join(root, name)
            lower = name.lower()
            if name.startswith("."):
                continue
            with open(path, "rb") as f:
                magic = f.read(8)
            if magic == b"ElfFile\x00":
                recs, errors = evtx_records(path)
                pairs = recs
                if errors:
                    damaged[path] = len(recs)
            elif lower.endswith(JSON_EXT + (".gz", ".tgz", ".zip")):
                pairs = [channel_and_id(d) for d in records_of_json_file(path)]
            else:
                continue
            per_file[path] = len(pairs)
            for c, e in pairs:
                channels[MISSING if c is None else c] += 1
                ids[MISSING if e is None else e] += 1
    return channels, ids, per_file, damaged


def engine_terms(url, index, field):
    terms = {"field": field, "size": 10000, "missing": MISSING if field.endswith(".keyword") else -1}
    body = json.dumps({"size": 0, "aggs": {"t": {"terms": terms}}}).encode()
    req = urllib.request.Request(f"{url}/{index}/_search", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        buckets = json.load(r)["aggregations"]["t"]["buckets"]
    return collections.Counter({MISSING if b["key"] == -1 else b["key"]: b["doc_count"]
                                for b in buckets})


def compare(name, want, got, surplus_allowed):
    bad, surplus = [], 0
    for key in sorted(set(want) | set(got), key=str):
        w, g = want.get(key, 0), got.get(key, 0)
        if g < w:
            bad.append(f"  {name} {key!r}: expected {w}, index has {g}")
        surplus += g - w
    if surplus != surplus_allowed:
        bad.append(f"  {name}: index holds {surplus} documents beyond the independent counts, "
                   f"{surplus_allowed} explained by damaged .evtx files")
    return bad


def main():
    if sys.argv[1] == "--expected":
        channels, ids, per_file, damaged = expected(sys.argv[2])
        print(json.dumps({"records": sum(per_file.values()), "files": len(per_file),
                          "damaged_evtx": damaged}, indent=2))
        return 0
    folder, url, index, summary_path = sys.argv[1:5]
    url = url.rstrip("/")
    channels, ids, per_file, damaged = expected(folder)
    summary = json.load(open(summary_path))
    read = {i["input"]: i["events_read"] for i in summary["inputs"]}
    surplus = sum(read.get(p, 0) - n for p, n in damaged.items())
    urllib.request.urlopen(urllib.request.Request(f"{url}/{index}/_refresh", method="POST")).read()
    with urllib.request.urlopen(f"{url}/{index}/_count") as r:
        count = json.load(r)["count"]
    with urllib.request.urlopen(f"{url}/{index}/_mapping") as r:
        mapping = json.load(r)[index]["mappings"]

    def fields(props):
        n = 0
        for v in props.values():
            n += 1 + len(v.get("fields", {})) + fields(v.get("properties", {}))
        return n

    total = sum(per_file.values())
    problems = []
    if summary["dead_lettered"] or summary["failed"]:
        problems.append(f"  {summary['dead_lettered']} dead-lettered, {summary['failed']} failed "
                        f"(see {summary.get('dead_letter_path')})")
    if count != total + surplus:
        problems.append(f"  _count {count}, expected {total} (+{surplus} from damaged .evtx)")
    problems += compare("Channel", channels, engine_terms(url, index, "Channel.keyword"), surplus)
    problems += compare("EventID", ids, engine_terms(url, index, "EventID"), surplus)
    n_fields = fields(mapping.get("properties", {}))
    print(f"files: {len(per_file)}, records (independent count): {total}, "
          f"documents: {count}, channels: {len(channels)}, event ids: {len(ids)}, "
          f"mapped fields: {n_fields} ({len(mapping.get('properties', {}))} top level)")
    for path, n in damaged.items():
        print(f"  damaged .evtx {path}: independent parser {n}, evtship {read.get(path)}")
    if problems:
        print("FIDELITY CHECK FAILED:")
        print("\n".join(problems))
        return 1
    print("fidelity check passed: no rejection, counts per Channel and EventID match")
    return 0


if __name__ == "__main__":
    sys.exit(main())
