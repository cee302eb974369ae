//! Payload types shared by several domains. They travel inside events, so they derive serde's
//! `Serialize` and `Deserialize`.

use serde::{Deserialize, Serialize};

/// Amounts of compute resources: what a kernel requests, or what an agent has free or in use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceSlots {
    /// CPU, in thousandths of a core (`2000` = 2 cores).
    pub cpu_millis: u64,
    /// Memory, in bytes.
    pub mem_bytes: u64,
    /// Whole CUDA devices.
    pub cuda_devices: u32,
}

impl ResourceSlots {
    /// `cores` CPU cores, `gib` GiB of memory and `gpus` CUDA devices.
    pub const fn new(cores: u64, gib: u64, gpus: u32) -> Self {
        ResourceSlots { cpu_millis: cores * 1000, mem_bytes: gib * 1024 * 1024 * 1024, cuda_devices: gpus }
    }
}

impl std::fmt::Display for ResourceSlots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} cpu, {} GiB", self.cpu_millis as f64 / 1000.0, self.mem_bytes / (1024 * 1024 * 1024))?;
        if self.cuda_devices > 0 {
            write!(f, ", {} gpu", self.cuda_devices)?;
        }
        Ok(())
    }
}

/// Protocol of a service a kernel exposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceProtocol {
    /// An HTTP application (Jupyter, TensorBoard, a model server).
    Http,
    /// A raw TCP service (SSH).
    Tcp,
    /// A port opened by the user's own program.
    Preopen,
}

/// A service port a kernel exposes, and where the agent published it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicePort {
    /// Service name (`jupyter`, `sshd`, `tensorboard`).
    pub name: String,
    /// Protocol.
    pub protocol: ServiceProtocol,
    /// Port inside the container.
    pub container_port: u16,
    /// Port on the agent host.
    pub host_port: u16,
}

/// Severity of an error report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth a look.
    Warning,
    /// Something failed.
    Error,
    /// A service cannot continue.
    Critical,
}

/// Kind of node reporting on an operation done on every node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    /// A compute agent.
    Agent,
    /// A storage proxy.
    StorageProxy,
}
