//! The retry decision, kept apart from HTTP and from accounting: which answers are sent again,
//! why (a typed [`Cause`], also the label of the retry metric), and after how long.

use super::settings::BulkSettings;
use serde_json::Value;
use std::fmt;
use std::time::Duration;

/// Whether an HTTP status (of a request or an item) is worth sending again.
pub fn retryable(status: u16) -> bool {
    status == 429 || status >= 500
}

/// Delay before retry number `attempt` (1-based): doubling from the initial delay up to the cap,
/// with "equal jitter" (half fixed, half random) so that retries of many requests spread out.
pub fn backoff(settings: &BulkSettings, attempt: u32) -> Duration {
    let initial = settings.initial_backoff_ms.get() as u64;
    let cap = settings.max_backoff_ms.get() as u64;
    let exp = initial.saturating_mul(1u64 << attempt.saturating_sub(1).min(30));
    let ceiling = exp.min(cap);
    let half = ceiling / 2;
    Duration::from_millis(half + fastrand::u64(0..=half.max(1)))
}

/// The engine's reason for refusing an item, on one line.
pub fn item_reason(error: Option<&Value>, status: u16) -> String {
    match error {
        Some(e) => {
            let kind = e["type"].as_str().unwrap_or("error");
            let reason = e["reason"].as_str().unwrap_or_default();
            let cause = e["caused_by"]["reason"].as_str();
            match cause {
                Some(c) => format!("{kind}: {reason} ({c})"),
                None => format!("{kind}: {reason}"),
            }
        }
        None => format!("HTTP {status}"),
    }
}

/// A request that got no answer.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No connection, or it broke before the status came.
    #[error("{node}")]
    Connection {
        /// The node, credentials hidden.
        node: String,
        /// The transport's error.
        #[source]
        source: elasticsearch::Error,
    },
    /// The status came, but the body could not be read.
    #[error("reading the response")]
    Response(#[source] elasticsearch::Error),
}

/// Why a request, or some of its items, are sent again.
#[derive(Debug)]
pub enum Cause {
    /// The request got no answer.
    Unanswered(SendError),
    /// The whole request was answered with this status (429 or 5xx).
    Request(u16),
    /// Items were answered with a retryable status: the last one's status and reason.
    Items {
        /// The status.
        status: u16,
        /// The engine's reason.
        reason: String,
    },
}

impl Cause {
    /// The label of the retry metric: `connection`, `response`, `request_503`, `item_429`.
    pub fn label(&self) -> String {
        match self {
            Self::Unanswered(SendError::Connection { .. }) => "connection".into(),
            Self::Unanswered(SendError::Response(_)) => "response".into(),
            Self::Request(status) => format!("request_{status}"),
            Self::Items { status, .. } => format!("item_{status}"),
        }
    }

    /// Whether the whole request is sent again (not some of its items).
    pub fn is_whole_request(&self) -> bool {
        matches!(self, Self::Unanswered(_) | Self::Request(_))
    }

    /// Whether no engine answered (for health).
    pub fn is_connection(&self) -> bool {
        matches!(self, Self::Unanswered(SendError::Connection { .. }))
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unanswered(e) => f.write_str(&crate::common::error_chain(e)),
            Self::Request(status) => write!(f, "HTTP {status} for the whole request"),
            Self::Items { reason, .. } => write!(f, "item {reason}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let s = BulkSettings::default();
        let first = backoff(&s, 1).as_millis();
        assert!((100..=200).contains(&first), "{first}");
        for attempt in 1..40 {
            assert!(backoff(&s, attempt).as_millis() <= 30_000);
        }
        assert!(backoff(&s, 8).as_millis() >= 12_800);
    }

    #[test]
    fn reasons_name_the_engine_error() {
        let e = serde_json::json!({"type":"mapper_parsing_exception","reason":"failed to parse field [x]",
            "caused_by":{"type":"x","reason":"For input string: \"abc\""}});
        assert_eq!(
            item_reason(Some(&e), 400),
            "mapper_parsing_exception: failed to parse field [x] (For input string: \"abc\")"
        );
        assert_eq!(item_reason(None, 503), "HTTP 503");
        assert_eq!(Cause::Request(503).label(), "request_503");
        assert_eq!(
            Cause::Items {
                status: 429,
                reason: String::new()
            }
            .label(),
            "item_429"
        );
    }
}
