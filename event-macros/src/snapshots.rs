//! Expansion snapshots: each case's expansion, pretty-printed, is compared with
//! `tests/expand/<case>.expanded.rs`. Run with `SNAPSHOTS=overwrite` to (re)write the files,
//! then review the diff: these files are the generated code as reviewers read it.

use std::path::PathBuf;

use proc_macro2::TokenStream;
use quote::quote;

use crate::event::{self, Kind};
use crate::handler;

/// Compares the pretty-printed `expanded` with the snapshot `name`, headed by `invocation`.
fn check(name: &str, invocation: &str, expanded: syn::Result<TokenStream>) {
    let expanded = expanded.unwrap_or_else(|e| panic!("{name}: expansion failed: {e}"));
    let file: syn::File =
        syn::parse2(expanded).unwrap_or_else(|e| panic!("{name}: expansion is not a valid file: {e}"));
    let actual = format!(
        "// Expansion of `{invocation}`.\n// Regenerate with `SNAPSHOTS=overwrite cargo test -p event-macros`.\n\n{}",
        prettyplease::unparse(&file)
    );
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/expand").join(format!("{name}.expanded.rs"));
    if std::env::var_os("SNAPSHOTS").is_some_and(|v| v == "overwrite") {
        std::fs::create_dir_all(path.parent().unwrap_or(&path))
            .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        std::fs::write(&path, &actual).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{name}: cannot read the snapshot {} ({e}); run `SNAPSHOTS=overwrite cargo test -p event-macros` to create it",
            path.display()
        )
    });
    if expected != actual {
        panic!(
            "{name}: the expansion differs from {}; if the change is intended, run `SNAPSHOTS=overwrite cargo test -p event-macros` and review the diff.\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        );
    }
}

#[test]
fn broadcast_event() {
    check(
        "broadcast_event",
        "#[broadcast_event(domain = \"kernel\")]",
        event::expand(
            Kind::Broadcast,
            quote!(domain = "kernel"),
            quote! {
                /// A kernel is up.
                #[derive(Debug, Clone)]
                pub struct KernelStartedBroadcastEvent {
                    pub kernel_id: String,
                    pub session_id: String,
                }
            },
        ),
    );
}

#[test]
fn anycast_event_all_args() {
    check(
        "anycast_event_all_args",
        "#[anycast_event(domain = \"storage\", name = \"vfolder_deletion_requested\", stream = \"events:{storage}:jobs\", version = 2, crate = \"::my_facade\")]",
        event::expand(
            Kind::Anycast,
            quote!(
                domain = "storage",
                name = "vfolder_deletion_requested",
                stream = "events:{storage}:jobs",
                version = 2,
                crate = "::my_facade",
            ),
            quote! {
                #[derive(Debug, Clone)]
                pub(crate) struct VFolderDeletionRequestedEvent {
                    pub vfolder_id: String,
                    #[serde(default)]
                    pub reasons: Vec<Option<String>>,
                    pub r#type: u8,
                }
            },
        ),
    );
}

#[test]
fn handler_minimal() {
    check(
        "handler_minimal",
        "#[handler]",
        handler::expand(
            TokenStream::new(),
            quote! {
                async fn on_kernel_started(ev: KernelStartedBroadcastEvent) {
                    let _ = ev;
                }
            },
        ),
    );
}

#[test]
fn handler_all_options() {
    check(
        "handler_all_options",
        "#[handler(group = \"storage\", max_attempts = 5, backoff = \"exponential\", base_delay = \"100ms\", max_delay = \"10s\", timeout = \"30s\", concurrency = 8, name = \"purge\", crate = \"::event_core\")]",
        handler::expand(
            quote!(
                group = "storage",
                max_attempts = 5,
                backoff = "exponential",
                base_delay = "100ms",
                max_delay = "10s",
                timeout = "30s",
                concurrency = 8,
                name = "purge",
                crate = "::event_core",
            ),
            quote! {
                pub async fn purge_vfolder(
                    State(db): State<Db>,
                    meta: EventMeta,
                    ev: VFolderDeletionRequestedEvent,
                ) -> anyhow::Result<()> {
                    db.purge(&ev.vfolder_id, meta.attempt).await?;
                    Ok(())
                }
            },
        ),
    );
}
