//! Policy errors: each names the file, line and column, says what is wrong
//! with which value, and how to fix it.

use std::fmt;
use std::path::PathBuf;

/// One problem in one policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line, 0 when the problem is the file itself.
    pub line: usize,
    /// 1-based column, 0 when the problem is the file itself.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when we can say.
    pub hint: Option<String>,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)?;
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.column,
                self.message
            )?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Every problem found in a policy set; validation reports them all at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        let n = self.0.len();
        write!(
            f,
            "\n{n} error{} in the policy set; nothing was written",
            if n == 1 { "" } else { "s" }
        )
    }
}
