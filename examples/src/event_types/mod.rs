//! The event catalog, one module per domain.
//!
//! Delivery mode follows intent: a task handed to one instance of a service (create a kernel,
//! clone a folder, record a heartbeat) is an **anycast** event; a notification or a state sync
//! every live instance should see (a kernel started, progress of a background task, a volume
//! to mount on every node) is a **broadcast** event. Where both audiences exist, the same
//! occurrence is declared twice under one name: `KernelStartedAnycastEvent` (manager
//! bookkeeping, exactly once) beside `KernelStartedBroadcastEvent` (UIs and caches), both named
//! `kernel_started`.

pub mod common;

pub mod agent;
pub mod artifact;
pub mod artifact_registry;
pub mod bgtask;
pub mod idle;
pub mod image;
pub mod kernel;
pub mod log;
pub mod model_serving;
pub mod schedule;
pub mod session;
pub mod vfolder;
pub mod volume;

/// The domains of the catalog, one per module above.
pub const DOMAINS: [&str; 13] = [
    "kernel",
    "session",
    "bgtask",
    "agent",
    "vfolder",
    "volume",
    "image",
    "schedule",
    "artifact",
    "artifact_registry",
    "model_serving",
    "log",
    "idle",
];

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use event_core::{registered_events, Delivery, Event};

    use super::*;

    fn ours() -> Vec<&'static event_core::EventDescriptor> {
        registered_events()
            .into_iter()
            .filter(|e| e.module_path.starts_with(module_path!().trim_end_matches("::tests")))
            .collect()
    }

    #[test]
    fn every_domain_has_three_to_six_events_in_its_own_module() {
        let mut per_domain: BTreeMap<&str, usize> = BTreeMap::new();
        for e in ours() {
            let module_domain = e.module_path.rsplit("::").next().unwrap_or_default();
            assert_eq!(module_domain, e.info.domain, "{} is declared in the module of another domain", e.type_ident);
            *per_domain.entry(e.info.domain).or_default() += 1;
        }
        for domain in DOMAINS {
            let n = per_domain.get(domain).copied().unwrap_or(0);
            assert!((3..=6).contains(&n), "domain {domain} has {n} events");
        }
        assert_eq!(per_domain.len(), DOMAINS.len());
    }

    #[test]
    fn names_are_unique_per_delivery_mode() {
        let mut seen = BTreeSet::new();
        for e in ours() {
            assert!(
                seen.insert((e.info.delivery, e.info.name)),
                "duplicate {} event name {}",
                e.info.delivery,
                e.info.name
            );
            assert!(
                e.info.name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{} is not snake_case",
                e.info.name
            );
        }
    }

    #[test]
    fn the_issue_s_named_events_exist_with_their_delivery() {
        use agent::{AgentHeartbeatEvent, AgentStatusChangedEvent};
        use bgtask::{BgtaskCancelledEvent, BgtaskDoneEvent, BgtaskFailedEvent, BgtaskUpdatedEvent};
        use kernel::{
            KernelPullingBroadcastEvent, KernelStartedAnycastEvent, KernelStartedBroadcastEvent,
            KernelTerminatedBroadcastEvent,
        };
        use session::{SessionStartedBroadcastEvent, SessionTerminatedBroadcastEvent};

        fn info<E: Event>() -> (&'static str, &'static str, Delivery) {
            (E::NAME, E::DOMAIN, E::DELIVERY)
        }
        use Delivery::{Anycast, Broadcast};
        assert_eq!(info::<KernelStartedBroadcastEvent>(), ("kernel_started", "kernel", Broadcast));
        assert_eq!(info::<KernelStartedAnycastEvent>(), ("kernel_started", "kernel", Anycast));
        assert_eq!(info::<KernelTerminatedBroadcastEvent>(), ("kernel_terminated", "kernel", Broadcast));
        assert_eq!(info::<KernelPullingBroadcastEvent>(), ("kernel_pulling", "kernel", Broadcast));
        assert_eq!(info::<SessionStartedBroadcastEvent>(), ("session_started", "session", Broadcast));
        assert_eq!(info::<SessionTerminatedBroadcastEvent>(), ("session_terminated", "session", Broadcast));
        assert_eq!(info::<BgtaskUpdatedEvent>(), ("bgtask_updated", "bgtask", Broadcast));
        assert_eq!(info::<BgtaskDoneEvent>(), ("bgtask_done", "bgtask", Anycast));
        assert_eq!(info::<BgtaskFailedEvent>(), ("bgtask_failed", "bgtask", Anycast));
        assert_eq!(info::<BgtaskCancelledEvent>(), ("bgtask_cancelled", "bgtask", Anycast));
        assert_eq!(info::<AgentHeartbeatEvent>(), ("agent_heartbeat", "agent", Anycast));
        assert_eq!(info::<AgentStatusChangedEvent>(), ("agent_status_changed", "agent", Broadcast));
        assert_eq!(KernelStartedBroadcastEvent::STREAM, "events:{kernel}:broadcast");
        assert_eq!(KernelStartedAnycastEvent::STREAM, "events:{kernel}:anycast");
    }

    #[test]
    fn nested_payload_types_round_trip() {
        let ev = kernel::KernelStartedAnycastEvent {
            kernel_id: "k-01".into(),
            session_id: "s-01".into(),
            agent_id: "agent-1".into(),
            container_id: "ctr-1".into(),
            service_ports: vec![common::ServicePort {
                name: "jupyter".into(),
                protocol: common::ServiceProtocol::Http,
                container_port: 8080,
                host_port: 30001,
            }],
            allocated_slots: common::ResourceSlots::new(2, 8, 1),
            started_at_ms: 1_700_000_000_000,
        };
        let json = serde_json::to_value(&ev).expect("serializes");
        assert_eq!(json["service_ports"][0]["protocol"], "http");
        let back: kernel::KernelStartedAnycastEvent = serde_json::from_value(json).expect("deserializes");
        assert_eq!(back.service_ports, ev.service_ports);
        assert_eq!(back.allocated_slots, ev.allocated_slots);
    }
}
