//! Reading a topology file strictly: YAML through `serde-saphyr` (docs/decisions.md, "YAML"),
//! unknown fields refused with a suggestion, and every error turned into a [`Diagnostic`]
//! that names `file:line:column` and what was expected.

use std::path::Path;

use serde_saphyr::Error;

use crate::diag::{Diagnostic, Diagnostics};
use crate::located::Pos;
use crate::schema::Topology;
use crate::suggest;

/// Reads `path` and parses it (no semantic validation: see [`Topology::load`]).
pub fn read(path: &Path) -> Result<Topology, Diagnostics> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diagnostics(vec![Diagnostic {
            file: file.clone(),
            pos: None,
            path: String::new(),
            message: format!("cannot read the topology file: {e}"),
        }])
    })?;
    parse(&text, &file)
}

/// Parses `text`; `file` names it in errors. Parsing stops at the first error.
pub fn parse(text: &str, file: &str) -> Result<Topology, Diagnostics> {
    serde_saphyr::from_str::<Topology>(text).map_err(|e| Diagnostics(vec![diagnostic(&e, text, file)]))
}

/// One parse error of `text` as a diagnostic.
fn diagnostic(e: &Error, text: &str, file: &str) -> Diagnostic {
    let pos = e.location().and_then(Pos::from_saphyr);
    Diagnostic {
        file: file.to_string(),
        pos,
        path: String::new(),
        message: message(e.without_snippet(), text),
    }
}

/// The source text an error points at, if the library says where it is.
fn scalar_at(e: &Error, text: &str) -> Option<String> {
    let span = e.location()?.span();
    let start = usize::try_from(span.byte_offset()?).ok()?;
    let len = usize::try_from(span.byte_len()?).ok()?;
    let s = text.get(start..start.checked_add(len)?)?.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// What a scalar of Rust type `ty` must look like in the file.
fn expected_scalar(ty: &str) -> String {
    match ty {
        "u8" => format!("a whole number from 0 to {}", u8::MAX),
        "u16" => format!("a whole number from 0 to {}", u16::MAX),
        "u32" => format!("a whole number from 0 to {}", u32::MAX),
        "u64" => format!("a whole number from 0 to {}", u64::MAX),
        "bool" => "true or false".to_string(),
        "f32" | "f64" => "a number".to_string(),
        t if t.starts_with('i') => "a whole number".to_string(),
        t => format!("a value of type {t}"),
    }
}

fn message(e: &Error, text: &str) -> String {
    match e {
        Error::InvalidScalar { ty, .. } => match scalar_at(e, text) {
            Some(found) => format!("expected {}, found `{found}`", expected_scalar(ty)),
            None => format!("expected {}", expected_scalar(ty)),
        },
        Error::DuplicateMappingKey { key: Some(key), .. } => format!("`{key}` is given twice"),
        Error::DuplicateMappingKey { key: None, .. } => "a key is given twice".to_string(),
        Error::SerdeUnknownField { field, expected, .. } => {
            format!("`{field}`: unknown field{}", suggest::hint(field, expected))
        }
        Error::SerdeUnknownVariant { variant, expected, .. } => {
            format!("`{variant}`: unknown value{}", suggest::hint(variant, expected))
        }
        Error::SerdeMissingField { field, .. } => format!("missing field `{field}`"),
        Error::SerdeInvalidType { unexpected, expected, .. }
        | Error::SerdeInvalidValue { unexpected, expected, .. } => {
            format!("expected {expected}, found {unexpected}")
        }
        Error::Message { msg, .. } => msg.clone(),
        other => format!("invalid YAML: {}", strip_location(&other.to_string())),
    }
}

/// The library's own text without its trailing position (we print ours in front).
fn strip_location(s: &str) -> String {
    let s = s.trim();
    match s.rfind(" at line ") {
        Some(i) if s[i..].contains("column") => s[..i].trim_end_matches([',', ':']).to_string(),
        _ => s.to_string(),
    }
}
