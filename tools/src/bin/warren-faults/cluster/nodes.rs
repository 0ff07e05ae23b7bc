//! The three nodes as child processes: the command line of each (its own `--peers`, whose
//! entries for the other nodes name the proxies it dials through), start and wait for
//! the ready line, kill -9, stop with SIGTERM. Only the pids started here are ever
//! signalled. The live pids are written to a file after every change so that
//! benches/faults/cluster.sh can kill what is left if this process itself is killed.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What a node is started with; the same on every restart.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    pub name: String,
    pub host: Ipv4Addr,
    pub amqp_port: u16,
    pub mgmt_port: u16,
    pub data: PathBuf,
    pub log: PathBuf,
    /// This node's `--peers` (None: a single node without cluster flags, the self-test).
    pub peers: Option<String>,
    pub cookie: PathBuf,
    pub bin: PathBuf,
    pub extra: Vec<String>,
}

impl NodeSpec {
    pub fn amqp(&self) -> SocketAddr {
        SocketAddr::from((self.host, self.amqp_port))
    }
}

pub struct Node {
    pub spec: NodeSpec,
    child: Option<Child>,
    ready: Option<mpsc::Receiver<String>>,
    /// The management API's address, from the line after the ready line.
    pub mgmt: SocketAddr,
    pub starts: u32,
}

impl Node {
    pub fn new(spec: NodeSpec) -> Node {
        let mgmt = SocketAddr::from((spec.host, spec.mgmt_port));
        Node {
            spec,
            child: None,
            ready: None,
            mgmt,
            starts: 0,
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn alive(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Start the process (not waiting for it to serve).
    pub fn spawn(&mut self) -> Result<(), String> {
        if self.alive() {
            return Err(format!("{} is already running", self.spec.name));
        }
        let s = &self.spec;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&s.log)
            .map_err(|e| format!("log {}: {e}", s.log.display()))?;
        let mut cmd = Command::new(&s.bin);
        if let Some(peers) = &s.peers {
            cmd.args(["--node-name", &s.name, "--peers", peers])
                .arg("--cluster-cookie-file")
                .arg(&s.cookie);
        }
        cmd.args(["--bind", &s.host.to_string()])
            .args(["--port", &s.amqp_port.to_string()])
            .args(["--management-port", &s.mgmt_port.to_string()])
            .args(["--prometheus-port", "0"])
            .arg("--data-dir")
            .arg(&s.data)
            .args(&s.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", s.bin.display()))?;
        let (tx, rx) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            // Reads stdout to its end so the node never blocks on a full pipe.
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if line.contains(" ready on amqp://")
                        || line.contains("management API on http://")
                    {
                        let _ = tx.send(line);
                    }
                }
            });
        }
        self.child = Some(child);
        self.ready = Some(rx);
        self.starts += 1;
        Ok(())
    }

    /// Wait for the ready line (and the management line after it).
    pub fn wait_ready(&mut self, patience: Duration) -> Result<Duration, String> {
        let started = Instant::now();
        let deadline = started + patience;
        let Some(rx) = self.ready.take() else {
            return Err(format!("{} was not started", self.spec.name));
        };
        let mut ready = false;
        loop {
            let wait = if ready {
                // The management line follows at once, if the node prints one.
                Duration::from_millis(500)
            } else {
                Duration::from_millis(50)
            };
            match rx.recv_timeout(wait) {
                Ok(line) if line.contains(" ready on amqp://") => ready = true,
                Ok(line) => {
                    if let Some(a) = mgmt_addr(&line, self.spec.host) {
                        self.mgmt = a;
                    }
                    if ready {
                        return Ok(started.elapsed());
                    }
                }
                Err(_) if ready => return Ok(started.elapsed()),
                Err(_) if !self.alive() => {
                    return Err(format!(
                        "{} exited before its ready line (see {})",
                        self.spec.name,
                        self.spec.log.display()
                    ))
                }
                Err(_) if Instant::now() > deadline => {
                    return Err(format!(
                        "{} not ready within {patience:?} (see {})",
                        self.spec.name,
                        self.spec.log.display()
                    ))
                }
                Err(_) => {}
            }
        }
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            forget(c.id());
            let _ = c.kill();
            let _ = c.wait();
        }
        self.ready = None;
    }

    /// SIGTERM, up to `patience` for the exit, SIGKILL after that. True if it stopped
    /// on its own.
    pub fn stop(&mut self, patience: Duration) -> bool {
        let Some(mut c) = self.child.take() else {
            return true;
        };
        forget(c.id());
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let deadline = Instant::now() + patience;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        false
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// `warren management API on http://HOST:PORT` -> the address (HOST as the node's own
/// address when it is a name such as localhost).
fn mgmt_addr(line: &str, host: Ipv4Addr) -> Option<SocketAddr> {
    let rest = line.split("http://").nth(1)?;
    let hostport = rest.split('/').next()?.trim();
    let (h, p) = hostport.rsplit_once(':')?;
    let port: u16 = p.parse().ok()?;
    let ip = h.parse::<Ipv4Addr>().unwrap_or(host);
    Some(SocketAddr::from((ip, port)))
}

/// The pids of the nodes running now, for the signal handler (they are our children:
/// not reaped, so never reused, until `kill9`/`stop` took them out of this list).
pub static LIVE: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

fn forget(pid: u32) {
    LIVE.lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|p| *p != pid);
}

/// Write the pids of the running nodes to `path` (one a line), replacing the file, and
/// keep them in `LIVE`.
pub fn write_pids(path: &std::path::Path, nodes: &mut [Node]) {
    let mut s = String::new();
    let mut live = Vec::new();
    for n in nodes.iter_mut() {
        if n.alive() {
            if let Some(p) = n.pid() {
                s.push_str(&format!("{p}\n"));
                live.push(p);
            }
        }
    }
    *LIVE.lock().unwrap_or_else(|p| p.into_inner()) = live;
    let tmp = path.with_extension("tmp");
    if let Ok(mut f) = std::fs::File::create(&tmp) {
        let _ = f.write_all(s.as_bytes());
        let _ = std::fs::rename(&tmp, path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_management_line() {
        let h = Ipv4Addr::new(127, 0, 0, 2);
        assert_eq!(
            mgmt_addr("warren management API on http://127.0.0.2:26273", h),
            Some("127.0.0.2:26273".parse().unwrap())
        );
        assert_eq!(
            mgmt_addr("warren management API on http://localhost:15672", h),
            Some("127.0.0.2:15672".parse().unwrap())
        );
    }
}
