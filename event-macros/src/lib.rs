//! Attribute macros for event-core. Use them through `event_core::prelude`.
use proc_macro::TokenStream;

/// Declares a broadcast event.
#[proc_macro_attribute]
pub fn broadcast_event(_args: TokenStream, item: TokenStream) -> TokenStream {
    item
}

/// Declares an anycast event.
#[proc_macro_attribute]
pub fn anycast_event(_args: TokenStream, item: TokenStream) -> TokenStream {
    item
}

/// Declares a handler.
#[proc_macro_attribute]
pub fn handler(_args: TokenStream, item: TokenStream) -> TokenStream {
    item
}
