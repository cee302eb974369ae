//! Volume events: shared filesystems mounted on every node of a scaling group, and the usage
//! storage proxies report for their volumes.

use event_core::prelude::*;

use super::common::NodeKind;

/// Mount a shared filesystem on every node: each agent (and storage proxy) mounts it and
/// reports back with [`VolumeMountedEvent`].
#[broadcast_event(domain = "volume")]
#[derive(Debug, Clone)]
pub struct VolumeMountRequestedEvent {
    /// Mount point on the nodes (`/mnt/datasets`).
    pub mount_path: String,
    /// What to mount (`nfs01:/export/datasets`).
    pub fs_location: String,
    /// Filesystem type (`nfs`, `cephfs`).
    pub fs_type: String,
    /// Mount options (`ro,noatime`).
    pub mount_options: Option<String>,
    /// Only nodes of this scaling group, or all nodes.
    pub scaling_group: Option<String>,
}

/// One node's result of a [`VolumeMountRequestedEvent`]; the manager records it.
#[anycast_event(domain = "volume")]
#[derive(Debug, Clone)]
pub struct VolumeMountedEvent {
    /// Node id.
    pub node_id: String,
    /// Kind of node.
    pub node_kind: NodeKind,
    /// Mount point.
    pub mount_path: String,
    /// Why the mount failed, if it did.
    pub error: Option<String>,
}

/// Unmount a shared filesystem from every node.
#[broadcast_event(domain = "volume")]
#[derive(Debug, Clone)]
pub struct VolumeUnmountRequestedEvent {
    /// Mount point on the nodes.
    pub mount_path: String,
    /// Only nodes of this scaling group, or all nodes.
    pub scaling_group: Option<String>,
}

/// One node's result of a [`VolumeUnmountRequestedEvent`]; the manager records it.
#[anycast_event(domain = "volume")]
#[derive(Debug, Clone)]
pub struct VolumeUnmountedEvent {
    /// Node id.
    pub node_id: String,
    /// Kind of node.
    pub node_kind: NodeKind,
    /// Mount point.
    pub mount_path: String,
    /// Why the unmount failed, if it did.
    pub error: Option<String>,
}

/// Capacity report of a storage volume served by a storage proxy.
#[broadcast_event(domain = "volume")]
#[derive(Debug, Clone)]
pub struct VolumeUsageReportedEvent {
    /// Volume (`nas01:projects`).
    pub volume: String,
    /// Storage backend (`xfs`, `cephfs`, `netapp`).
    pub backend: String,
    /// Capacity, in bytes.
    pub capacity_bytes: u64,
    /// Used, in bytes.
    pub used_bytes: u64,
    /// When measured, in unix milliseconds.
    pub reported_at_ms: u64,
}
