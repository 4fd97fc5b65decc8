//! Printing results as text or JSON. Keys and values are shown escaped (printable ASCII as is,
//! other bytes as `\xNN`) in both formats, so binary data never garbles a terminal.

use serde_json::{Value, json};
use tern_core::key::escape;
use tern_core::mutation::CheckOutcome;
use tern_core::read::{SortKeyValue, TablePage, Ttl};

use crate::cli::OutputFormat;

const SHOW: usize = 4096;

fn e(b: &[u8]) -> String {
    escape(b, SHOW)
}

fn print_json(v: Value) {
    println!("{v}");
}

pub fn version(fmt: OutputFormat, version: &str, git: &str) {
    match fmt {
        OutputFormat::Text => println!("tern {version} (git {git})"),
        OutputFormat::Json => print_json(json!({ "version": version, "git": git })),
    }
}

pub fn ok(fmt: OutputFormat) {
    match fmt {
        OutputFormat::Text => println!("OK"),
        OutputFormat::Json => print_json(json!({ "ok": true })),
    }
}

pub fn value(fmt: OutputFormat, v: Option<&[u8]>) {
    match (fmt, v) {
        (OutputFormat::Text, Some(v)) => println!("{}", e(v)),
        (OutputFormat::Text, None) => println!("(not found)"),
        (OutputFormat::Json, v) => print_json(json!({ "found": v.is_some(), "value": v.map(e) })),
    }
}

pub fn incr(fmt: OutputFormat, new_value: i64) {
    match fmt {
        OutputFormat::Text => println!("{new_value}"),
        OutputFormat::Json => print_json(json!({ "value": new_value })),
    }
}

pub fn checked(fmt: OutputFormat, c: &CheckOutcome) {
    match fmt {
        OutputFormat::Text => {
            println!("{}", if c.passed { "check passed: written" } else { "check failed: nothing written" });
            match &c.check_value {
                Some(Some(v)) => println!("checked value: {}", e(v)),
                Some(None) => println!("checked value: (not found)"),
                None => {}
            }
        }
        OutputFormat::Json => {
            let mut o = json!({ "passed": c.passed });
            if let Some(cv) = &c.check_value {
                o["check_value_found"] = json!(cv.is_some());
                o["check_value"] = json!(cv.as_deref().map(e));
            }
            print_json(o);
        }
    }
}

/// Records of one hash key. `resume` is where a further page would start (scan), `complete`
/// whether limits cut the result short (multi-get).
pub fn records(
    fmt: OutputFormat,
    recs: &[SortKeyValue],
    no_value: bool,
    resume: Option<&[u8]>,
    complete: bool,
) {
    match fmt {
        OutputFormat::Text => {
            for r in recs {
                if no_value {
                    println!("{}", e(&r.sort_key));
                } else {
                    println!("{} => {}", e(&r.sort_key), e(&r.value));
                }
            }
            let n = plural(recs.len());
            match resume {
                Some(r) => println!("({n}; more after sort key \"{}\": pass --after it, or --all)", e(r)),
                None if !complete => println!("({n}; limit reached, more exist)"),
                None => println!("({n})"),
            }
        }
        OutputFormat::Json => {
            let list: Vec<Value> = recs
                .iter()
                .map(|r| {
                    if no_value {
                        json!({ "sort_key": e(&r.sort_key) })
                    } else {
                        json!({ "sort_key": e(&r.sort_key), "value": e(&r.value) })
                    }
                })
                .collect();
            print_json(
                json!({ "records": list, "complete": complete && resume.is_none(), "resume_after": resume.map(e) }),
            );
        }
    }
}

pub fn count(fmt: OutputFormat, n: u64) {
    match fmt {
        OutputFormat::Text => println!("{n}"),
        OutputFormat::Json => print_json(json!({ "count": n })),
    }
}

pub fn ttl(fmt: OutputFormat, t: Option<Ttl>) {
    match (fmt, t) {
        (OutputFormat::Text, None) => println!("(not found)"),
        (OutputFormat::Text, Some(Ttl::Persistent)) => println!("persistent (no TTL)"),
        (OutputFormat::Text, Some(Ttl::Remaining(s))) => println!("{s}s"),
        (OutputFormat::Json, None) => print_json(json!({ "found": false })),
        (OutputFormat::Json, Some(Ttl::Persistent)) => print_json(json!({ "found": true, "ttl_secs": null })),
        (OutputFormat::Json, Some(Ttl::Remaining(s))) => print_json(json!({ "found": true, "ttl_secs": s })),
    }
}

pub fn table_page(fmt: OutputFormat, page: &TablePage, next: Option<&str>, no_value: bool) {
    let token = next;
    match fmt {
        OutputFormat::Text => {
            for r in &page.records {
                if no_value {
                    println!("{} : {}", e(&r.hash_key), e(&r.sort_key));
                } else {
                    println!("{} : {} => {}", e(&r.hash_key), e(&r.sort_key), e(&r.value));
                }
            }
            let n = plural(page.records.len());
            match token {
                Some(t) => println!("({n}; next page: --resume {t})"),
                None => println!("({n}; end of table)"),
            }
        }
        OutputFormat::Json => {
            let list: Vec<Value> = page
                .records
                .iter()
                .map(|r| {
                    let mut o = json!({ "hash_key": e(&r.hash_key), "sort_key": e(&r.sort_key) });
                    if !no_value {
                        o["value"] = json!(e(&r.value));
                    }
                    o
                })
                .collect();
            print_json(json!({ "records": list, "resume": token }));
        }
    }
}

fn plural(n: usize) -> String {
    if n == 1 { "1 record".to_string() } else { format!("{n} records") }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_round_trip() {
        assert_eq!(super::unhex(&super::hex(b"\x00\xffab")).unwrap(), b"\x00\xffab");
        assert_eq!(super::unhex("0g"), None);
        assert_eq!(super::unhex("abc"), None);
    }
}
