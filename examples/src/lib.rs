//! # examples
//!
//! The event catalog and the service components of a cluster manager for containerized compute
//! sessions, written with `event-core`:
//!
//! - [`event_types`]: every event, one module per domain (`kernel`, `session`, `bgtask`, ...).
//! - [`components`]: the `#[handler]`s of the three services, the **manager** (control plane and
//!   bookkeeping), the **agent** (a compute node running kernels as containers) and the
//!   **storage proxy** (serves virtual folders), with the state they share.
//! - [`timeline`]: a shared, timestamped log the handlers write to, used by the demo.
//!
//! Linking this crate registers all of its events and handlers with `event-core`'s registry, so
//! another crate can `use examples as _;` and see the whole catalog through
//! [`event_core::registered_events`] and [`event_core::registered_handlers`].
#![warn(missing_docs)]

pub mod components;
pub mod event_types;
pub mod loadtest;
pub mod timeline;
