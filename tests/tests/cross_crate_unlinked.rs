#![allow(clippy::unwrap_used)]
//! The documented pitfall: `test-handlers` is a dependency of this package, but this test
//! binary never names it, so the linker leaves it out and none of its handlers registers.
//! (`cross_crate.rs` shows the fix: `use test_handlers as _;`.) If this test ever fails, the
//! toolchain started linking unnamed crates and the README's warning can be relaxed.

#[test]
fn a_crate_the_binary_never_names_registers_nothing() {
    let found: Vec<&str> = event_core::registered_handlers()
        .into_iter()
        .filter(|h| h.module_path.starts_with("test_handlers"))
        .map(|h| h.name)
        .collect();
    assert!(found.is_empty(), "unexpectedly linked: {found:?}");
}

#[test]
fn expect_handlers_catches_the_missing_crate() {
    let err = event_core::EventDispatcher::builder(event_core::InMemoryQueue::new())
        .discover_in_module("test_handlers")
        .expect_handlers(3)
        .build()
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("use my_handlers as _;"), "{text}");
}
