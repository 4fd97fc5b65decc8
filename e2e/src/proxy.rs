//! `tern proxy` processes in front of several clusters, and their status.

use std::path::Path;
use std::time::Duration;

use crate::cluster::Cluster;
use crate::ports::free_addr;
use crate::process::{Process, run_cli};

/// Starts `tern proxy --listen <free port> --cluster NAME=METAS ... EXTRA` with its log in
/// `dir/<name>.log`. The process is killed when dropped.
pub fn start_proxy(dir: &Path, name: &str, clusters: &[(&str, &Cluster)], extra: &[&str]) -> Process {
    let clusters: Vec<(&str, String)> = clusters.iter().map(|(n, c)| (*n, c.meta_arg())).collect();
    start_at(dir, name, "proxy", &free_addr(), &clusters, extra)
}

/// `tern KIND --listen ADDR --cluster NAME=METAS ... EXTRA` (`kind`: `proxy` or `witness`), with
/// the clusters' meta addresses given as they should be reached (e.g. through a
/// [`crate::faults::FaultProxy`]), on an address picked beforehand (DR voters are named in the
/// clusters' flags before they start). Killed when dropped.
pub fn start_at(
    dir: &Path,
    name: &str,
    kind: &str,
    addr: &str,
    clusters: &[(&str, String)],
    extra: &[&str],
) -> Process {
    let mut args = vec![kind.to_string(), "--listen".into(), addr.to_string()];
    for (cluster, metas) in clusters {
        args.push("--cluster".into());
        args.push(format!("{cluster}={metas}"));
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut p =
        Process::new(name.into(), addr.to_string(), dir.to_path_buf(), dir.join(format!("{name}.log")), args);
    p.start();
    p
}

/// `tern proxy status --output json` of the proxy at `addr`, or why it failed.
pub async fn proxy_status(addr: &str) -> Result<serde_json::Value, String> {
    let out =
        run_cli(&["proxy", "status", "--proxy", addr, "--output", "json"], Duration::from_secs(20)).await;
    if out.code != 0 {
        return Err(format!("tern proxy status failed: {}", out.stderr.trim()));
    }
    serde_json::from_str(out.stdout.trim()).map_err(|e| format!("not JSON ({e}): {}", out.stdout))
}

/// One table's entry of a proxy status.
pub fn table_of<'a>(status: &'a serde_json::Value, table: &str) -> Option<&'a serde_json::Value> {
    status["tables"].as_array()?.iter().find(|t| t["table"] == table)
}

/// One cluster's entry in a table's status.
pub fn copy_of<'a>(table: &'a serde_json::Value, cluster: &str) -> Option<&'a serde_json::Value> {
    table["clusters"].as_array()?.iter().find(|c| c["cluster"] == cluster)
}

/// The response (headers and body) of `GET path` at `addr` (a metrics listener).
pub async fn http_get(addr: &str, path: &str) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .map_err(|e| format!("send to {addr}: {e}"))?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.map_err(|e| format!("read from {addr}: {e}"))?;
    Ok(out)
}

/// Waits until the proxy at `addr` has decided `outcome` (`refused`, `promoted`, ...) about
/// `table`; returns the decision's reason.
pub async fn wait_decision(addr: &str, table: &str, outcome: &str) -> String {
    crate::wait_until(&format!("the proxy's decision to be {outcome}"), crate::cluster::SETTLE, || async {
        let s = proxy_status(addr).await?;
        let t = table_of(&s, table).ok_or(format!("no table {table}"))?;
        match t["last_decision"]["outcome"].as_str() {
            Some(o) if o == outcome => {
                Ok(t["last_decision"]["reason"].as_str().unwrap_or_default().to_string())
            }
            _ => Err(format!("{t}")),
        }
    })
    .await
}
