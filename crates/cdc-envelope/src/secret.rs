//! [`Secret`]: a configuration value (password, key passphrase) that is
//! never printed. Every pg-cdc crate that reads credentials keeps them in it.

use std::fmt;

/// A secret string: compared and cloned like a string, never shown by
/// `Debug` (there is no `Display`).
///
/// ```
/// let pw = cdc_envelope::Secret::new("hunter2");
/// assert_eq!(format!("{pw:?}"), "<redacted>");
/// assert_eq!(pw.expose(), "hunter2");
/// ```
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself, for the one place that needs it (authentication).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}
