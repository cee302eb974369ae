//! Idle events: finding sessions that hold resources without using them.

use event_core::prelude::*;
use serde::{Deserialize, Serialize};

/// A rule deciding that a session is idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdleChecker {
    /// No network traffic to the session's services for a while.
    NetworkTimeout,
    /// CPU and GPU utilization stayed under a threshold for a while.
    UtilizationThreshold,
    /// The session is older than its maximum lifetime.
    SessionLifetime,
}

/// What one checker thinks of a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdleCheckerStatus {
    /// The checker.
    pub checker: IdleChecker,
    /// Time left before the session is terminated, if the checker applies.
    pub remaining_ms: Option<u64>,
}

/// Run the idle checkers over running sessions; one manager instance (of the `idle-checker`
/// group) does each pass.
#[anycast_event(domain = "idle")]
#[derive(Debug, Clone)]
pub struct IdleCheckRequestedEvent {
    /// Only this scaling group, or all.
    pub scaling_group: Option<String>,
    /// When, in unix milliseconds.
    pub triggered_at_ms: u64,
}

/// A session reached an idle timeout and should be terminated.
#[anycast_event(domain = "idle")]
#[derive(Debug, Clone)]
pub struct IdleTimeoutReachedEvent {
    /// Session id.
    pub session_id: String,
    /// The checker that fired.
    pub checker: IdleChecker,
    /// How long the session has been idle, in milliseconds.
    pub idle_for_ms: u64,
    /// The checker's threshold, in milliseconds.
    pub threshold_ms: u64,
}

/// The idle status of a session, for its owner's UI.
#[broadcast_event(domain = "idle")]
#[derive(Debug, Clone)]
pub struct IdleStatusReportedEvent {
    /// Session id.
    pub session_id: String,
    /// One entry per checker.
    pub checkers: Vec<IdleCheckerStatus>,
}

/// An administrator changed an idle checker's settings; every manager instance reloads them.
#[broadcast_event(domain = "idle")]
#[derive(Debug, Clone)]
pub struct IdleCheckerConfigUpdatedEvent {
    /// The checker.
    pub checker: IdleChecker,
    /// Whether it runs.
    pub enabled: bool,
    /// Its threshold, in milliseconds.
    pub threshold_ms: u64,
}
