// Expansion of `#[anycast_event(domain = "storage", name = "vfolder_deletion_requested", stream = "events:{storage}:jobs", version = 2, crate = "::my_facade")]`.
// Regenerate with `SNAPSHOTS=overwrite cargo test -p event-macros`.

#[derive(
    ::my_facade::__private::serde::Serialize,
    ::my_facade::__private::serde::Deserialize
)]
#[serde(crate = "::my_facade::__private::serde")]
#[derive(Debug, Clone)]
pub(crate) struct VFolderDeletionRequestedEvent {
    pub vfolder_id: String,
    #[serde(default)]
    pub reasons: Vec<Option<String>>,
    pub r#type: u8,
}
#[allow(unused_qualifications, clippy::absolute_paths)]
const _: () = {
    #[automatically_derived]
    impl ::my_facade::Event for VFolderDeletionRequestedEvent {
        const NAME: &'static str = "vfolder_deletion_requested";
        const DOMAIN: &'static str = "storage";
        const VERSION: u32 = 2;
        const DELIVERY: ::my_facade::Delivery = ::my_facade::Delivery::Anycast;
        const STREAM: &'static str = "events:{storage}:jobs";
    }
    #[automatically_derived]
    impl ::my_facade::AnycastEvent for VFolderDeletionRequestedEvent {}
    const __EVENT_DESCRIPTOR: ::my_facade::__private::EventDescriptor = ::my_facade::__private::EventDescriptor {
        info: ::my_facade::__private::EventInfo::of::<VFolderDeletionRequestedEvent>(),
        module_path: ::core::module_path!(),
        type_ident: "VFolderDeletionRequestedEvent",
        fields: &[
            ("vfolder_id", "String"),
            ("reasons", "Vec<Option<String>>"),
            ("type", "u8"),
        ],
    };
    ::my_facade::__private::inventory::submit!(__EVENT_DESCRIPTOR);
};
