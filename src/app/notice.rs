//! Messages for the user, shown once as toasts: what the panels, the store and the engine
//! have to say that is not inline in a page.

/// How serious a notice is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoticeLevel {
    /// Something the user should know (e.g. a backup was made).
    Info,
    /// Something went wrong but work is safe.
    Warning,
    /// Work may not be saved.
    Error,
}

/// A message for the user about their files, shown once as a toast.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// Severity.
    pub level: NoticeLevel,
    /// What happened and what to do, in a sentence or two.
    pub message: String,
}
