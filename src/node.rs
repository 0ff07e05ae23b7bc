//! This node's name in RabbitMQ's form, `rabbit@<hostname>`, so tools that show or match
//! it work unchanged.
//!
//! Read by the event exchange (events carry the node) and the management API
//! (`/api/nodes`, the overview). Asks the system once per call; never fails (falls back
//! to `localhost`).

/// `rabbit@` and the machine's short host name.
pub(crate) fn name() -> String {
    format!("rabbit@{}", hostname())
}

/// The machine's short host name, as Erlang's node names use it.
fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = if rc == 0 {
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "localhost".to_owned()
    };
    name.split('.').next().unwrap_or("localhost").to_owned()
}
