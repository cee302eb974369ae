//! Log events: error and audit records written by the manager, and their cleanup.

use event_core::prelude::*;

use super::common::Severity;

/// An error worth keeping for operators; one manager instance writes it to the error log.
#[anycast_event(domain = "log")]
#[derive(Debug, Clone)]
pub struct ErrorLogRecordedEvent {
    /// How bad.
    pub severity: Severity,
    /// Component that saw it (`agent-3`, `storage-proxy-1`).
    pub source: String,
    /// What happened.
    pub message: String,
    /// User involved, if any.
    pub user_id: Option<String>,
    /// API request involved, if any.
    pub request_url: Option<String>,
    /// Stack trace, if any.
    pub traceback: Option<String>,
    /// When, in unix milliseconds.
    pub occurred_at_ms: u64,
}

/// A user or an administrator did something worth auditing.
#[anycast_event(domain = "log")]
#[derive(Debug, Clone)]
pub struct AuditLogRecordedEvent {
    /// Who (an access key or `system`).
    pub actor: String,
    /// What (`session.create`, `vfolder.delete`).
    pub action: String,
    /// On what (an id).
    pub target: String,
    /// Whether it succeeded.
    pub success: bool,
    /// When, in unix milliseconds.
    pub occurred_at_ms: u64,
}

/// Delete log records older than the retention period; one manager instance does it.
#[anycast_event(domain = "log")]
#[derive(Debug, Clone)]
pub struct LogCleanupRequestedEvent {
    /// Keep this many days.
    pub retention_days: u32,
    /// Which logs (`error`, `audit`).
    pub categories: Vec<String>,
    /// When requested, in unix milliseconds.
    pub requested_at_ms: u64,
}
