// Expansion of `#[handler]`.
// Regenerate with `SNAPSHOTS=overwrite cargo test -p event-macros`.

async fn on_kernel_started(ev: KernelStartedBroadcastEvent) {
    let _ = ev;
}
#[allow(
    unused_qualifications,
    clippy::absolute_paths,
    clippy::needless_update,
    clippy::question_mark_used,
    clippy::used_underscore_binding
)]
const _: () = {
    const __EVENT_HANDLER: ::event_core::__private::HandlerDescriptor = ::event_core::__private::HandlerDescriptor {
        name: "on_kernel_started",
        module_path: ::core::module_path!(),
        event: ::event_core::__private::EventInfo::of::<KernelStartedBroadcastEvent>(),
        options: ::event_core::__private::HandlerOptions::DEFAULT,
        requires: &[],
        invoke: |__event_call| {
            let __event_ev = __event_call.event::<KernelStartedBroadcastEvent>()?;
            ::core::result::Result::Ok(
                ::event_core::__private::boxed(async move {
                    let __event_out = on_kernel_started(__event_ev).await;
                    ::event_core::__private::IntoHandlerResult::into_handler_result(
                        __event_out,
                    )
                }),
            )
        },
    };
    ::event_core::__private::inventory::submit!(__EVENT_HANDLER);
};
