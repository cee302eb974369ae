//! [`enum@Error`]: what can go wrong talking to Redis.

/// Errors of the Redis backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL does not parse or names an unsupported scheme.
    #[error("invalid Redis URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL, password redacted.
        url: String,
        /// Why.
        reason: String,
    },
    /// The server could not be reached in time.
    #[error("cannot connect to Redis at `{url}` within {timeout:?}: {reason}")]
    Connect {
        /// The URL, password redacted.
        url: String,
        /// The connect timeout.
        timeout: std::time::Duration,
        /// Last error seen.
        reason: String,
    },
    /// The server is older than the oldest supported version.
    #[error("Redis {found} is too old: event-redis needs Redis >= 6.2 (XAUTOCLAIM)")]
    UnsupportedVersion {
        /// Version reported by the server.
        found: String,
    },
    /// A command kept failing for the whole retry budget.
    #[error("Redis unavailable: `{operation}` failed {attempts} times over {elapsed:?}; last error: {source}")]
    Unavailable {
        /// What was being done.
        operation: &'static str,
        /// Attempts made.
        attempts: u32,
        /// Time spent.
        elapsed: std::time::Duration,
        /// The last error.
        #[source]
        source: redis::RedisError,
    },
    /// Redis answered with an error or an unexpected reply.
    #[error("Redis command failed: {0}")]
    Redis(#[from] redis::RedisError),
    /// A reply did not have the expected shape.
    #[error("unexpected Redis reply to `{operation}`: {detail}")]
    Protocol {
        /// The command.
        operation: &'static str,
        /// What was off.
        detail: String,
    },
}

impl From<Error> for event_core::Error {
    fn from(e: Error) -> Self {
        event_core::Error::backend(e)
    }
}

/// `Result` with [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `url` with its password (if any) replaced by `***`.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let Some((auth, host)) = rest.rsplit_once('@') else { return url.to_owned() };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => format!("{scheme}://***@{host}"),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("redis://u:secret@h:1/0"), "redis://u:***@h:1/0");
        assert_eq!(redact("redis://secret@h:1"), "redis://***@h:1");
        assert_eq!(redact("redis://h:1"), "redis://h:1");
    }
}
