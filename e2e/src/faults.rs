//! A fault-injecting TCP proxy between processes (the kernel's netem is not available here):
//! it listens on a free loopback port and forwards every connection to a target address, until
//! told to cut. A cut is a partition as the processes see it: [`Mode::Blackhole`] keeps the
//! connections but forwards nothing (calls time out; new connections are accepted and stay
//! silent), [`Mode::Refuse`] closes every connection at once. Healing closes what was
//! blackholed (its bytes are lost) and forwards new connections again.
//!
//! It runs in the test's own runtime; dropping it stops it and closes its connections.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does with traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forward both ways.
    Pass,
    /// Keep connections open but forward nothing, as a network partition does.
    Blackhole,
    /// Close every connection, as a stopped process's host does.
    Refuse,
}

/// One forwarded address.
#[derive(Debug)]
pub struct FaultProxy {
    /// Where processes connect (`127.0.0.1:<port>`).
    pub addr: String,
    /// Where it forwards to.
    pub target: String,
    mode: Arc<watch::Sender<Mode>>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts forwarding a free loopback port to `target` (which need not listen yet).
    pub async fn start(target: &str) -> FaultProxy {
        let listener =
            TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("bind a fault proxy: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("fault proxy address: {e}")).to_string();
        let mode = Arc::new(watch::Sender::new(Mode::Pass));
        let (to, modes) = (target.to_string(), mode.clone());
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let _ = inbound.set_nodelay(true);
                tokio::spawn(serve(inbound, to.clone(), modes.subscribe()));
            }
        });
        FaultProxy { addr, target: target.to_string(), mode, task }
    }

    pub fn set(&self, mode: Mode) {
        eprintln!("e2e: fault proxy {} -> {}: {mode:?}", self.addr, self.target);
        self.mode.send_replace(mode);
    }

    /// A partition: connections stay, nothing crosses.
    pub fn cut(&self) {
        self.set(Mode::Blackhole)
    }

    pub fn heal(&self) {
        self.set(Mode::Pass)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
        // Connections end once the mode's sender is gone.
        self.mode.send_replace(Mode::Refuse);
    }
}

/// One connection, until it or the target closes, or the mode ends it.
async fn serve(mut inbound: TcpStream, target: String, mut mode: watch::Receiver<Mode>) {
    let mut buf = vec![0u8; 16 * 1024];
    let first = *mode.borrow_and_update();
    match first {
        Mode::Refuse => return,
        Mode::Blackhole => {
            // Accepted, silent: whatever is sent is lost; closed once the mode changes.
            loop {
                tokio::select! {
                    r = inbound.read(&mut buf) => if !matches!(r, Ok(n) if n > 0) { return },
                    _ = mode.changed() => return,
                }
            }
        }
        Mode::Pass => {}
    }
    let Ok(mut outbound) = TcpStream::connect(&target).await else { return };
    let _ = outbound.set_nodelay(true);
    let (mut in_read, mut in_write) = inbound.split();
    let (mut out_read, mut out_write) = outbound.split();
    let mut back = vec![0u8; 16 * 1024];
    let mut forward = true;
    loop {
        tokio::select! {
            r = in_read.read(&mut buf) => {
                let n = match r { Ok(n) if n > 0 => n, _ => return };
                if forward && out_write.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
            r = out_read.read(&mut back) => {
                let n = match r { Ok(n) if n > 0 => n, _ => return };
                if forward && in_write.write_all(&back[..n]).await.is_err() {
                    return;
                }
            }
            changed = mode.changed() => {
                if changed.is_err() {
                    return;
                }
                let now = *mode.borrow_and_update();
                match now {
                    Mode::Blackhole => forward = false,
                    // Healed: what was lost meanwhile desynchronized this connection.
                    Mode::Pass if !forward => return,
                    Mode::Pass => {}
                    Mode::Refuse => return,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> String {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
        let addr = l.local_addr().unwrap_or_else(|e| panic!("{e}")).to_string();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut b = [0u8; 64];
                    while let Ok(n) = s.read(&mut b).await {
                        if n == 0 || s.write_all(&b[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn echo(s: &mut TcpStream) -> Option<Vec<u8>> {
        s.write_all(b"ping").await.ok()?;
        let mut b = [0u8; 4];
        let read = tokio::time::timeout(std::time::Duration::from_millis(300), s.read_exact(&mut b)).await;
        matches!(read, Ok(Ok(4))).then(|| b.to_vec())
    }

    #[tokio::test]
    async fn forwards_blackholes_refuses_and_heals() {
        let target = echo_server().await;
        let p = FaultProxy::start(&target).await;
        let mut s = TcpStream::connect(&p.addr).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(echo(&mut s).await.as_deref(), Some(&b"ping"[..]));
        p.cut();
        assert_eq!(echo(&mut s).await, None, "nothing crosses a blackhole");
        let mut fresh = TcpStream::connect(&p.addr).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(echo(&mut fresh).await, None, "a new connection is accepted and stays silent");
        p.heal();
        let mut again = TcpStream::connect(&p.addr).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(echo(&mut again).await.as_deref(), Some(&b"ping"[..]));
        p.set(Mode::Refuse);
        assert_eq!(echo(&mut again).await, None, "closed");
    }
}
