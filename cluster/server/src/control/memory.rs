//! This process's memory as the beacon reports it: resident, and how much of it is in huge
//! pages (whether the memtables got them is otherwise only visible in `/proc/PID/smaps_rollup`).

use std::time::{Duration, Instant};

use tern_proto::pb;

/// How often `/proc/self/smaps_rollup` is read (it walks the page tables).
const REFRESH: Duration = Duration::from_secs(10);

/// The last reading, refreshed every [`REFRESH`].
#[derive(Debug, Default)]
pub struct MemoryProbe {
    last: Option<(Instant, Option<pb::NodeMemory>)>,
}

impl MemoryProbe {
    pub fn current(&mut self) -> Option<pb::NodeMemory> {
        match &self.last {
            Some((at, memory)) if at.elapsed() < REFRESH => *memory,
            _ => {
                let memory = std::fs::read_to_string("/proc/self/smaps_rollup").ok().and_then(|t| parse(&t));
                self.last = Some((Instant::now(), memory));
                memory
            }
        }
    }
}

/// Resident and huge-page bytes from the text of an `smaps_rollup` file (values in kB).
fn parse(text: &str) -> Option<pb::NodeMemory> {
    let kb = |field: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|n| n.trim().parse::<u64>().ok())
    };
    let resident = kb("Rss")?;
    let huge =
        ["AnonHugePages", "Private_Hugetlb", "Shared_Hugetlb"].iter().filter_map(|f| kb(f)).sum::<u64>();
    Some(pb::NodeMemory { resident_bytes: resident * 1024, huge_page_bytes: huge * 1024 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_resident_and_every_kind_of_huge_page() {
        let text = "55d0c0000000-7ffd4b7f9000 ---p 00000000 00:00 0    [rollup]\n\
                    Rss:              112640 kB\n\
                    Pss:              110000 kB\n\
                    AnonHugePages:     51200 kB\n\
                    Shared_Hugetlb:        0 kB\n\
                    Private_Hugetlb:    4096 kB\n";
        let m = parse(text).unwrap();
        assert_eq!(m.resident_bytes, 112_640 * 1024);
        assert_eq!(m.huge_page_bytes, (51_200 + 4_096) * 1024);
        assert_eq!(parse("Pss: 1 kB\n"), None, "no Rss line: nothing known");
    }

    #[test]
    fn this_process_has_resident_memory_where_linux_tells() {
        if std::path::Path::new("/proc/self/smaps_rollup").exists() {
            let m = MemoryProbe::default().current().expect("smaps_rollup parses");
            assert!(m.resident_bytes > 0, "{m:?}");
        }
    }
}
