//! The rendered-Message parsers (Sysmon and Security style) and the record transformation on
//! arbitrary text: no panic, and every value a slice of the input.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let sysmon = evtship::transform::message::parse_sysmon(text);
    for (key, value) in &sysmon.fields {
        assert!(text.contains(key) && text.contains(value));
    }
    let sectioned = evtship::transform::message::parse_sectioned(text);
    assert!(text.contains(sectioned.title));
    for channel in ["Microsoft-Windows-Sysmon/Operational", "Security"] {
        let mut doc = serde_json::Map::new();
        doc.insert("Channel".into(), channel.into());
        doc.insert("EventID".into(), 13.into());
        doc.insert("EventType".into(), "INFO".into());
        doc.insert("Message".into(), text.into());
        evtship::transform::normalise(&mut doc, "2030-01-01T00:00:00.000Z", &Default::default());
    }
});
