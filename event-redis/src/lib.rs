//! Redis Streams backend for event-core (in progress).
