/// Errors from SMR domains.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A blocking call (`wait`, `synchronize`, `flush`) was made inside a
    /// read section of the same domain: it would wait for itself forever.
    #[error("cannot wait for readers of SMR domain `{domain}` from inside one of its read sections (it would wait for itself)")]
    InSection {
        /// The domain's name.
        domain: String,
    },
    /// The builder was given a setting that cannot work.
    #[error("invalid configuration for SMR domain `{domain}`: {reason}")]
    InvalidConfig {
        /// The domain's name.
        domain: String,
        /// What is wrong.
        reason: String,
    },
}
