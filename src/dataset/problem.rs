//! The vocabulary of [`super::validate`]: a [`Problem`] says what is wrong and where (file,
//! row, column); a [`ValidationReport`] lists them, after what recovery did. The collector
//! caps rows reported per file and column so one bad column cannot flood the report.

use std::fmt;
use std::path::{Path, PathBuf};

use super::recover::RecoveryReport;

/// Problems reported per file and column before the rest are summarised.
const MAX_PER_COLUMN: usize = 10;

/// One thing wrong, and where.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    pub file: PathBuf,
    /// Row within `file` (0-based), when the problem is in one row.
    pub row: Option<u64>,
    pub column: Option<String>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(row) = self.row {
            write!(f, ", row {row}")?;
        }
        if let Some(column) = &self.column {
            write!(f, ", column `{column}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The outcome of [`super::validate()`].
#[derive(Clone, Debug, Default)]
pub struct ValidationReport {
    /// What `handful dataset recover` would do (each item is also a problem).
    pub recovery: RecoveryReport,
    pub episodes: usize,
    pub frames: u64,
    pub problems: Vec<Problem>,
}

impl ValidationReport {
    pub fn is_valid(&self) -> bool {
        self.problems.is_empty()
    }
}

pub(crate) struct Collector(pub Vec<Problem>);

impl Collector {
    pub fn add(&mut self, file: &Path, row: Option<u64>, column: Option<&str>, message: String) {
        let same =
            |p: &&Problem| p.file == file && p.column.as_deref() == column && p.row.is_some();
        let count = self.0.iter().filter(same).count();
        if row.is_some() && count >= MAX_PER_COLUMN {
            if count == MAX_PER_COLUMN {
                let message = "more problems in this column not listed".to_string();
                self.0.push(Problem {
                    file: file.into(),
                    row: Some(u64::MAX),
                    column: column.map(Into::into),
                    message,
                });
            }
            return;
        }
        self.0.push(Problem {
            file: file.into(),
            row,
            column: column.map(Into::into),
            message,
        });
    }
}
