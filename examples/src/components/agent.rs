//! The agent: a compute node. Agents of a scaling group share the `agent` consumer group, so
//! each kernel creation request is taken by one of them (the pool splits the work); broadcast
//! commands such as a session's termination reach every agent, and each acts on its own share.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use event_core::prelude::*;

use super::{now_ms, Node};
use crate::event_types::agent::{AgentHeartbeatEvent, AgentStatus, AgentStatusChangedEvent};
use crate::event_types::common::{NodeKind, ResourceSlots, ServicePort, ServiceProtocol};
use crate::event_types::kernel::{
    ClusterRole, ImagePullPolicy, KernelCreationRequestedEvent, KernelPullingBroadcastEvent, KernelStartedAnycastEvent,
    KernelStartedBroadcastEvent, KernelTerminatedAnycastEvent, KernelTerminatedBroadcastEvent, KernelTerminationReason,
};
use crate::event_types::session::SessionTerminationRequestedEvent;
use crate::event_types::volume::{
    VolumeMountRequestedEvent, VolumeMountedEvent, VolumeUnmountRequestedEvent, VolumeUnmountedEvent,
};

/// Simulated time to pull an image.
pub const PULL_TIME: Duration = Duration::from_millis(40);
/// Simulated time to create and start a container.
pub const CREATE_TIME: Duration = Duration::from_millis(15);
/// Simulated time to destroy a container.
pub const DESTROY_TIME: Duration = Duration::from_millis(5);

/// A kernel running on this agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostedKernel {
    /// Kernel id.
    pub kernel_id: String,
    /// Its session.
    pub session_id: String,
    /// Container id.
    pub container_id: String,
    /// Resources it holds.
    pub slots: ResourceSlots,
}

#[derive(Debug)]
struct HostInner {
    agent_id: String,
    scaling_group: String,
    total_slots: ResourceSlots,
    images: BTreeSet<String>,
    kernels: BTreeMap<String, HostedKernel>,
    mounts: BTreeSet<String>,
    next_host_port: u16,
    created: u64,
    destroyed: u64,
}

impl HostInner {
    fn occupied_slots(&self) -> ResourceSlots {
        self.kernels.values().fold(ResourceSlots::default(), |acc, k| ResourceSlots {
            cpu_millis: acc.cpu_millis + k.slots.cpu_millis,
            mem_bytes: acc.mem_bytes + k.slots.mem_bytes,
            cuda_devices: acc.cuda_devices + k.slots.cuda_devices,
        })
    }
}

/// The node an agent instance manages: its images, containers and mounts (one per agent).
#[derive(Debug, Clone)]
pub struct AgentHost {
    inner: Arc<Mutex<HostInner>>,
}

impl AgentHost {
    /// A node called `agent_id` in `scaling_group` with `total_slots`, with `images` already
    /// present.
    pub fn new(agent_id: &str, scaling_group: &str, total_slots: ResourceSlots, images: &[&str]) -> Self {
        AgentHost {
            inner: Arc::new(Mutex::new(HostInner {
                agent_id: agent_id.to_owned(),
                scaling_group: scaling_group.to_owned(),
                total_slots,
                images: images.iter().map(|i| (*i).to_owned()).collect(),
                kernels: BTreeMap::new(),
                mounts: BTreeSet::new(),
                next_host_port: 30000,
                created: 0,
                destroyed: 0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HostInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Agent id.
    pub fn agent_id(&self) -> String {
        self.lock().agent_id.clone()
    }

    /// Whether the image is present.
    pub fn has_image(&self, image: &str) -> bool {
        self.lock().images.contains(image)
    }

    /// The kernels running here, by id.
    pub fn kernels(&self) -> Vec<HostedKernel> {
        self.lock().kernels.values().cloned().collect()
    }

    /// Kernels created and destroyed on this node so far.
    pub fn counts(&self) -> (u64, u64) {
        let h = self.lock();
        (h.created, h.destroyed)
    }

    /// Resources held by running kernels.
    pub fn occupied_slots(&self) -> ResourceSlots {
        self.lock().occupied_slots()
    }

    fn add_image(&self, image: &str) {
        self.lock().images.insert(image.to_owned());
    }

    fn allocate_port(&self) -> u16 {
        let mut h = self.lock();
        let port = h.next_host_port;
        h.next_host_port = h.next_host_port.wrapping_add(1);
        port
    }

    fn add_kernel(&self, kernel: HostedKernel) {
        let mut h = self.lock();
        h.created += 1;
        h.kernels.insert(kernel.kernel_id.clone(), kernel);
    }

    fn take_session(&self, session_id: &str) -> Vec<HostedKernel> {
        let mut h = self.lock();
        let ids: Vec<String> =
            h.kernels.values().filter(|k| k.session_id == session_id).map(|k| k.kernel_id.clone()).collect();
        h.destroyed += ids.len() as u64;
        ids.iter().filter_map(|id| h.kernels.remove(id)).collect()
    }
}

/// Announces that this agent is up: its status goes `STARTING -> ALIVE` (every manager instance
/// updates its cache) and it sends a first heartbeat (one manager instance records it).
pub async fn announce_alive(node: &Node, host: &AgentHost) -> Result<(), event_core::Error> {
    node.log("agent up, joining the cluster");
    node.emit(&AgentStatusChangedEvent {
        agent_id: host.agent_id(),
        previous: AgentStatus::Starting,
        current: AgentStatus::Alive,
        reason: Some("registered".to_owned()),
        changed_at_ms: now_ms(),
    })
    .await?;
    send_heartbeat(node, host).await
}

/// Sends one heartbeat with this node's current capacity.
pub async fn send_heartbeat(node: &Node, host: &AgentHost) -> Result<(), event_core::Error> {
    let heartbeat = {
        let h = host.lock();
        AgentHeartbeatEvent {
            agent_id: h.agent_id.clone(),
            scaling_group: h.scaling_group.clone(),
            total_slots: h.total_slots,
            occupied_slots: h.occupied_slots(),
            container_count: u32::try_from(h.kernels.len()).unwrap_or(u32::MAX),
            cached_images: h.images.iter().cloned().collect(),
            timestamp_ms: now_ms(),
        }
    };
    node.emit(&heartbeat).await
}

/// Creates a kernel: pulls its image when needed, starts the container, then reports the
/// kernel started twice, to UIs (broadcast) and to the manager's books (anycast).
#[handler(
    max_attempts = 3,
    backoff = "exponential",
    base_delay = "50ms",
    max_delay = "1s",
    timeout = "10s",
    concurrency = 2
)]
pub async fn create_kernel(
    State(node): State<Node>,
    State(host): State<AgentHost>,
    ev: KernelCreationRequestedEvent,
) -> Result<(), HandlerError> {
    let agent_id = host.agent_id();
    if ev.pull_policy == ImagePullPolicy::Always || !host.has_image(&ev.image) {
        node.log(format!("pulling {} for kernel {}", ev.image, ev.kernel_id));
        node.emit(&KernelPullingBroadcastEvent {
            kernel_id: ev.kernel_id.clone(),
            session_id: ev.session_id.clone(),
            agent_id: agent_id.clone(),
            image: ev.image.clone(),
        })
        .await?;
        tokio::time::sleep(PULL_TIME).await;
        host.add_image(&ev.image);
    }
    tokio::time::sleep(CREATE_TIME).await;

    let container_id = format!("ctr-{}-{}", agent_id, ev.kernel_id);
    let mut service_ports = vec![ServicePort {
        name: "sshd".to_owned(),
        protocol: ServiceProtocol::Tcp,
        container_port: 2200,
        host_port: host.allocate_port(),
    }];
    if ev.cluster_role == ClusterRole::Main {
        service_ports.push(ServicePort {
            name: "jupyter".to_owned(),
            protocol: ServiceProtocol::Http,
            container_port: 8080,
            host_port: host.allocate_port(),
        });
    }
    host.add_kernel(HostedKernel {
        kernel_id: ev.kernel_id.clone(),
        session_id: ev.session_id.clone(),
        container_id: container_id.clone(),
        slots: ev.resource_slots,
    });
    node.log(format!(
        "started kernel {} of {} ({:?} #{}, {}) in {container_id}",
        ev.kernel_id, ev.session_name, ev.cluster_role, ev.cluster_idx, ev.resource_slots
    ));

    let started_at_ms = now_ms();
    node.emit(&KernelStartedBroadcastEvent {
        kernel_id: ev.kernel_id.clone(),
        session_id: ev.session_id.clone(),
        agent_id: agent_id.clone(),
        container_id: container_id.clone(),
        started_at_ms,
    })
    .await?;
    node.emit(&KernelStartedAnycastEvent {
        kernel_id: ev.kernel_id,
        session_id: ev.session_id,
        agent_id,
        container_id,
        service_ports,
        allocated_slots: ev.resource_slots,
        started_at_ms,
    })
    .await?;
    Ok(())
}

/// Destroys the kernels of a terminated session that run on this agent (every agent gets the
/// request; most have nothing to do).
#[handler(timeout = "30s", concurrency = 4)]
pub async fn destroy_session_kernels(
    State(node): State<Node>,
    State(host): State<AgentHost>,
    ev: SessionTerminationRequestedEvent,
) -> Result<(), HandlerError> {
    let kernels = host.take_session(&ev.session_id);
    if kernels.is_empty() {
        return Ok(());
    }
    let agent_id = host.agent_id();
    let ids: Vec<&str> = kernels.iter().map(|k| k.kernel_id.as_str()).collect();
    node.log(format!("destroying {} kernel(s) of {}: {}", kernels.len(), ev.session_name, ids.join(", ")));
    for kernel in &kernels {
        tokio::time::sleep(DESTROY_TIME).await;
        let terminated_at_ms = now_ms();
        node.emit(&KernelTerminatedBroadcastEvent {
            kernel_id: kernel.kernel_id.clone(),
            session_id: kernel.session_id.clone(),
            agent_id: agent_id.clone(),
            reason: KernelTerminationReason::SessionTerminated,
            exit_code: Some(0),
            terminated_at_ms,
        })
        .await?;
        node.emit(&KernelTerminatedAnycastEvent {
            kernel_id: kernel.kernel_id.clone(),
            session_id: kernel.session_id.clone(),
            agent_id: agent_id.clone(),
            reason: KernelTerminationReason::SessionTerminated,
            exit_code: Some(0),
            freed_slots: kernel.slots,
            terminated_at_ms,
        })
        .await?;
    }
    Ok(())
}

/// Mounts a shared filesystem on this node and reports the result to the manager.
#[handler(timeout = "1m")]
pub async fn mount_volume(
    State(node): State<Node>,
    State(host): State<AgentHost>,
    ev: VolumeMountRequestedEvent,
) -> Result<(), HandlerError> {
    let (agent_id, in_group) = {
        let h = host.lock();
        let in_group = ev.scaling_group.as_ref().is_none_or(|sg| *sg == h.scaling_group);
        (h.agent_id.clone(), in_group)
    };
    if !in_group {
        return Ok(());
    }
    host.lock().mounts.insert(ev.mount_path.clone());
    node.log(format!("mounted {} ({}) at {}", ev.fs_location, ev.fs_type, ev.mount_path));
    node.emit(&VolumeMountedEvent {
        node_id: agent_id,
        node_kind: NodeKind::Agent,
        mount_path: ev.mount_path,
        error: None,
    })
    .await?;
    Ok(())
}

/// Unmounts a shared filesystem from this node and reports the result to the manager.
#[handler(timeout = "1m")]
pub async fn unmount_volume(
    State(node): State<Node>,
    State(host): State<AgentHost>,
    ev: VolumeUnmountRequestedEvent,
) -> Result<(), HandlerError> {
    let (agent_id, was_mounted) = {
        let mut h = host.lock();
        let in_group = ev.scaling_group.as_ref().is_none_or(|sg| *sg == h.scaling_group);
        (h.agent_id.clone(), in_group && h.mounts.remove(&ev.mount_path))
    };
    if !was_mounted {
        return Ok(());
    }
    node.log(format!("unmounted {}", ev.mount_path));
    node.emit(&VolumeUnmountedEvent {
        node_id: agent_id,
        node_kind: NodeKind::Agent,
        mount_path: ev.mount_path,
        error: None,
    })
    .await?;
    Ok(())
}
