//! Runs the built `event-examples` binary: the demo and the catalog.

use std::collections::BTreeSet;
use std::process::{Command, Output};

use examples::event_types::DOMAINS;
use serde_json::Value;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_event-examples")).args(args).output().expect("the binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("utf-8 output")
}

#[test]
fn demo_is_the_default_and_passes_its_checks() {
    let started = std::time::Instant::now();
    let output = run(&[]);
    let text = stdout(&output);
    assert!(output.status.success(), "demo failed: {}\n{text}", String::from_utf8_lossy(&output.stderr));
    assert!(started.elapsed().as_secs() < 20, "the demo is meant to be fast");
    for needle in [
        "Summary: per handler",
        "Summary: per component",
        "HANDLED",
        "RETRIED",
        "DEAD-LETTERED",
        "clone_vfolder",
        "create_kernel",
        "dead letter",
        "replaying",
    ] {
        assert!(text.contains(needle), "demo output lacks `{needle}`:\n{text}");
    }
    assert!(!text.contains("[FAIL]"), "{text}");

    // The summary rows of the deliberately failing handlers are deterministic.
    let row = |handler: &str| {
        text.lines()
            .find(|l| l.split_whitespace().nth(1) == Some(handler))
            .map(|l| l.split_whitespace().skip(4).collect::<Vec<_>>().join(" "))
    };
    assert_eq!(row("clone_vfolder").as_deref(), Some("2 2 2 1"));
    assert_eq!(row("delete_vfolder").as_deref(), Some("2 1 1 0"));
    assert_eq!(row("create_kernel").as_deref(), Some("3 6 0 0"));
    assert_eq!(row("destroy_session_kernels").as_deref(), Some("3 9 0 0"));
}

#[test]
fn demo_quiet_prints_only_the_summary() {
    let output = run(&["demo", "--quiet"]);
    assert!(output.status.success());
    let text = stdout(&output);
    assert!(text.contains("Summary: per handler"));
    assert!(!text.contains("agent up, joining the cluster"));
}

#[test]
fn catalog_json_lists_every_event_and_handler() {
    let output = run(&["catalog", "--json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let doc: Value = serde_json::from_slice(&output.stdout).expect("valid JSON");

    let events = doc["events"].as_array().expect("events array");
    for e in events {
        for key in ["name", "domain", "delivery", "stream", "version", "type"] {
            assert!(e.get(key).is_some(), "event lacks `{key}`: {e}");
        }
    }
    let domains: BTreeSet<&str> = events.iter().filter_map(|e| e["domain"].as_str()).collect();
    for domain in DOMAINS {
        assert!(domains.contains(domain), "no event in domain {domain}");
    }
    let types: BTreeSet<&str> =
        events.iter().filter_map(|e| e["type"].as_str()).filter_map(|t| t.rsplit("::").next()).collect();
    for ty in [
        "KernelStartedBroadcastEvent",
        "KernelTerminatedBroadcastEvent",
        "KernelPullingBroadcastEvent",
        "SessionStartedBroadcastEvent",
        "SessionTerminatedBroadcastEvent",
        "BgtaskUpdatedEvent",
        "BgtaskDoneEvent",
        "BgtaskFailedEvent",
        "BgtaskCancelledEvent",
        "AgentHeartbeatEvent",
        "AgentStatusChangedEvent",
    ] {
        assert!(types.contains(ty), "{ty} missing from the catalog");
    }
    let kernel_started: Vec<&str> =
        events.iter().filter(|e| e["name"] == "kernel_started").filter_map(|e| e["delivery"].as_str()).collect();
    assert_eq!(kernel_started.len(), 2, "an anycast and a broadcast `kernel_started`");

    let handlers = doc["handlers"].as_array().expect("handlers array");
    for h in handlers {
        for key in [
            "name",
            "module",
            "event",
            "delivery",
            "group",
            "max_attempts",
            "backoff",
            "base_delay_ms",
            "max_delay_ms",
            "timeout_ms",
            "concurrency",
        ] {
            assert!(h.get(key).is_some(), "handler lacks `{key}`: {h}");
        }
    }
    let listed: BTreeSet<(String, String)> = handlers
        .iter()
        .map(|h| {
            (h["module"].as_str().unwrap_or_default().to_owned(), h["name"].as_str().unwrap_or_default().to_owned())
        })
        .collect();
    let registered: BTreeSet<(String, String)> =
        event_core::registered_handlers().into_iter().map(|h| (h.module_path.to_owned(), h.name.to_owned())).collect();
    assert!(!registered.is_empty());
    assert_eq!(listed, registered, "every handler linked into the crate is listed");
    for (module, name) in [
        ("examples::components::manager", "on_kernel_started"),
        ("examples::components::agent", "create_kernel"),
        ("examples::components::storage_proxy", "clone_vfolder"),
    ] {
        assert!(listed.contains(&(module.to_owned(), name.to_owned())), "{module}::{name}");
    }
    let clone = handlers.iter().find(|h| h["name"] == "clone_vfolder").expect("clone_vfolder listed");
    assert_eq!(clone["group"], "storage-proxy");
    assert_eq!(clone["max_attempts"], 3);
    assert_eq!(clone["backoff"], "fixed");
    assert_eq!(clone["base_delay_ms"], 20);
    let idle = handlers.iter().find(|h| h["name"] == "check_idle").expect("check_idle listed");
    assert_eq!(idle["group"], "idle-checker");
}

#[test]
fn catalog_tables_and_domain_filter() {
    let output = run(&["catalog"]);
    assert!(output.status.success());
    let text = stdout(&output);
    assert!(text.contains("EVENTS (") && text.contains("HANDLERS ("));
    assert!(text.contains("KernelStartedAnycastEvent"));

    let output = run(&["catalog", "--json", "--domain", "bgtask"]);
    assert!(output.status.success());
    let doc: Value = serde_json::from_slice(&output.stdout).expect("valid JSON");
    let events = doc["events"].as_array().expect("events");
    assert!(!events.is_empty());
    assert!(events.iter().all(|e| e["domain"] == "bgtask"));

    let output = run(&["catalog", "--domain", "no-such-domain"]);
    assert!(!output.status.success());
}
