// Expansion of `#[broadcast_event(domain = "kernel")]`.
// Regenerate with `SNAPSHOTS=overwrite cargo test -p event-macros`.

/// A kernel is up.
#[derive(
    ::event_core::__private::serde::Serialize,
    ::event_core::__private::serde::Deserialize
)]
#[serde(crate = "::event_core::__private::serde")]
#[derive(Debug, Clone)]
pub struct KernelStartedBroadcastEvent {
    pub kernel_id: String,
    pub session_id: String,
}
#[allow(unused_qualifications, clippy::absolute_paths)]
const _: () = {
    #[automatically_derived]
    impl ::event_core::Event for KernelStartedBroadcastEvent {
        const NAME: &'static str = "kernel_started";
        const DOMAIN: &'static str = "kernel";
        const VERSION: u32 = 1;
        const DELIVERY: ::event_core::Delivery = ::event_core::Delivery::Broadcast;
        const STREAM: &'static str = "events:{kernel}:broadcast";
    }
    #[automatically_derived]
    impl ::event_core::BroadcastEvent for KernelStartedBroadcastEvent {}
    const __EVENT_DESCRIPTOR: ::event_core::__private::EventDescriptor = ::event_core::__private::EventDescriptor {
        info: ::event_core::__private::EventInfo::of::<KernelStartedBroadcastEvent>(),
        module_path: ::core::module_path!(),
        type_ident: "KernelStartedBroadcastEvent",
        fields: &[("kernel_id", "String"), ("session_id", "String")],
    };
    ::event_core::__private::inventory::submit!(__EVENT_DESCRIPTOR);
};
