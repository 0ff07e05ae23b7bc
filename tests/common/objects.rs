//! Helpers for the management API's object tests (tests/http_queues.rs,
//! http_exchanges.rs, http_bindings.rs): users with a tag and permissions.

use super::TestBroker;

/// Adds `name` (password "pw") with `tags`, and permissions in "/" when given.
pub fn user(broker: &TestBroker, name: &str, tags: &[&str], perms: Option<(&str, &str, &str)>) {
    let b = broker.server.broker();
    b.users().add(name, Some("pw")).expect("add user");
    b.users()
        .set_tags(name, tags.iter().map(|t| t.to_string()).collect())
        .expect("tags");
    if let Some((c, w, r)) = perms {
        b.set_permissions(name, "/", c, w, r).expect("permissions");
    }
}
