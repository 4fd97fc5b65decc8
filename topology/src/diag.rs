//! What is wrong with a topology file: [`Diagnostic`]s, each naming the file, the line and
//! column where known, the path of the offending value (`tables[1].links[0].to`) and what was
//! expected. [`Diagnostics`] holds all of them and prints one per line.

use std::fmt;

use serde::Serialize;

use crate::located::Pos;

/// One problem in a topology file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// The file as it was named to `load` (`<input>` for text given directly).
    pub file: String,
    pub pos: Option<Pos>,
    /// Where in the document's structure (`clusters[0].id`); empty for syntax errors.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    /// `file:line:column: path: message` (the parts that are known).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(p) = self.pos {
            write!(f, ":{p}")?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in a topology file, in the order of the file where positions are known.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }

    /// Sorted by position (unknown positions last, in the order they were found).
    pub(crate) fn sorted(mut self) -> Diagnostics {
        self.0.sort_by_key(|d| d.pos.map_or((u64::MAX, u64::MAX), |p| (p.line, p.column)));
        self
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}
