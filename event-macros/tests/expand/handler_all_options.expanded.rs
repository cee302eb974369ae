// Expansion of `#[handler(group = "storage", max_attempts = 5, backoff = "exponential", base_delay = "100ms", max_delay = "10s", timeout = "30s", concurrency = 8, name = "purge", crate = "::event_core")]`.
// Regenerate with `SNAPSHOTS=overwrite cargo test -p event-macros`.

pub async fn purge_vfolder(
    State(db): State<Db>,
    meta: EventMeta,
    ev: VFolderDeletionRequestedEvent,
) -> anyhow::Result<()> {
    db.purge(&ev.vfolder_id, meta.attempt).await?;
    Ok(())
}
#[allow(
    unused_qualifications,
    clippy::absolute_paths,
    clippy::needless_update,
    clippy::question_mark_used,
    clippy::used_underscore_binding
)]
const _: () = {
    const _: () = ::event_core::__private::assert_anycast::<
        VFolderDeletionRequestedEvent,
    >();
    const __EVENT_HANDLER: ::event_core::__private::HandlerDescriptor = ::event_core::__private::HandlerDescriptor {
        name: "purge",
        module_path: ::core::module_path!(),
        event: ::event_core::__private::EventInfo::of::<VFolderDeletionRequestedEvent>(),
        options: ::event_core::__private::HandlerOptions {
            group: ::core::option::Option::Some("storage"),
            max_attempts: ::core::option::Option::Some(5),
            backoff: ::core::option::Option::Some(
                ::event_core::__private::Backoff::Exponential,
            ),
            base_delay: ::core::option::Option::Some(
                ::core::time::Duration::from_millis(100),
            ),
            max_delay: ::core::option::Option::Some(
                ::core::time::Duration::from_secs(10),
            ),
            timeout: ::core::option::Option::Some(::core::time::Duration::from_secs(30)),
            concurrency: ::core::option::Option::Some(8),
            ..::event_core::__private::HandlerOptions::DEFAULT
        },
        requires: &[
            <State<Db> as ::event_core::__private::FromEventContext>::requirement,
            <EventMeta as ::event_core::__private::FromEventContext>::requirement,
        ],
        invoke: |__event_call| {
            let __event_arg0 = <State<
                Db,
            > as ::event_core::__private::FromEventContext>::from_context(__event_call)?;
            let __event_arg1 = <EventMeta as ::event_core::__private::FromEventContext>::from_context(
                __event_call,
            )?;
            let __event_ev = __event_call.event::<VFolderDeletionRequestedEvent>()?;
            ::core::result::Result::Ok(
                ::event_core::__private::boxed(async move {
                    let __event_out = purge_vfolder(
                            __event_arg0,
                            __event_arg1,
                            __event_ev,
                        )
                        .await;
                    <anyhow::Result<
                        (),
                    > as ::event_core::__private::IntoHandlerResult>::into_handler_result(
                        __event_out,
                    )
                }),
            )
        },
    };
    ::event_core::__private::inventory::submit!(__EVENT_HANDLER);
};
