//! The restore's one error type: what failed, naming the object, table or flag.

/// Why a restore stopped. Nothing of a failed restore serves: its table stays *restoring*
/// (re-run the same command to resume, or drop the table to abandon it).
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The backup target: missing or damaged objects name the object (`s3://bucket/prefix/files/<sha256>`).
    #[error(transparent)]
    Backup(#[from] tern_backup::Error),
    /// A downloaded file is not what the manifest says.
    #[error("object {object} is damaged: {detail}")]
    Damaged { object: String, detail: String },
    /// The cluster (meta server or a partition's primary) refused or failed.
    #[error(transparent)]
    Cluster(#[from] tern_core::Error),
    /// A request that cannot work (a bad flag or an unusable backup).
    #[error("{0}")]
    Invalid(String),
    #[error("{doing}: {source}")]
    Io { doing: String, source: std::io::Error },
}

impl RestoreError {
    pub fn io(doing: impl Into<String>) -> impl FnOnce(std::io::Error) -> RestoreError {
        let doing = doing.into();
        move |source| RestoreError::Io { doing, source }
    }

    /// Whether running the same restore again may succeed without anyone changing anything
    /// (a network failure, an unavailable partition).
    pub fn retryable(&self) -> bool {
        match self {
            RestoreError::Backup(e) => e.retryable(),
            RestoreError::Cluster(e) => e.is_retryable(),
            _ => false,
        }
    }
}

pub type Result<T, E = RestoreError> = std::result::Result<T, E>;
