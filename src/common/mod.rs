//! Small types every stage shares: index names, sizes, input ids, the time now, and errors
//! written on one line with their causes. Nothing here knows of any stage.

pub mod budget;
pub mod dirs;
pub mod fields;
mod index;
mod size;

pub use budget::{Budget, Charge};
pub use index::IndexName;
pub use size::ByteSize;

use chrono::{SecondsFormat, Utc};

/// Index of an input in the run's list of inputs (files, listeners, partitions).
pub type InputId = usize;

/// The current time as RFC 3339 UTC with milliseconds.
pub fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An error and its causes on one line (a cause already part of the text above it is not
/// repeated).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// `text` safe to print on a terminal: control characters (NUL, escape sequences, ...)
/// written as escapes (`\u{0}`), the rest as it is.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}
