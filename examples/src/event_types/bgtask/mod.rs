//! Background task events: long operations (cloning a folder, rescanning a registry) report
//! progress while they run and one final outcome.
//!
//! Progress is fast feedback for every connected UI (broadcast); the final outcome is recorded
//! once by the manager (anycast).

use event_core::prelude::*;

/// Progress of a background task.
#[broadcast_event(domain = "bgtask")]
#[derive(Debug, Clone)]
pub struct BgtaskUpdatedEvent {
    /// Task id.
    pub task_id: String,
    /// Units of work done.
    pub current_progress: u64,
    /// Units of work in total.
    pub total_progress: u64,
    /// What the task is doing now.
    pub message: Option<String>,
}

/// A background task finished successfully.
#[anycast_event(domain = "bgtask", name = "bgtask_done")]
#[derive(Debug, Clone)]
pub struct BgtaskDoneEvent {
    /// Task id.
    pub task_id: String,
    /// Summary of the result.
    pub message: Option<String>,
}

/// A background task failed and will not be retried on its own.
#[anycast_event(domain = "bgtask")]
#[derive(Debug, Clone)]
pub struct BgtaskFailedEvent {
    /// Task id.
    pub task_id: String,
    /// What went wrong.
    pub message: String,
}

/// A background task was cancelled before it finished.
#[anycast_event(domain = "bgtask")]
#[derive(Debug, Clone)]
pub struct BgtaskCancelledEvent {
    /// Task id.
    pub task_id: String,
    /// Who cancelled it.
    pub cancelled_by: String,
    /// Why.
    pub message: Option<String>,
}

/// A background task finished, but some of its items failed.
#[anycast_event(domain = "bgtask")]
#[derive(Debug, Clone)]
pub struct BgtaskPartialSuccessEvent {
    /// Task id.
    pub task_id: String,
    /// Summary of the result.
    pub message: String,
    /// One line per failed item.
    pub errors: Vec<String>,
}
