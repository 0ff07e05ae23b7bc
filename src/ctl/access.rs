//! The commands that change who may do what: users, their tags and passwords, vhosts,
//! permissions and policies, with rabbitmqctl's lines, messages and exit codes (67 for
//! a missing user, 70 for one that exists, 65 for a missing vhost where rabbitmqctl says
//! so, 69 for the rest).
//!
//! Called by `ctl::run`. Where one API answer cannot tell which object is missing, it
//! asks the API whether the user or vhost exists first, so the message names the right
//! one; it never changes anything before those checks pass.

use super::args::Args;
use super::client::{seg, Client};
use super::output::Out;
use super::{CtlError, EX_DATAERR, EX_NOUSER, EX_SOFTWARE, EX_UNAVAILABLE};
use serde_json::{json, Value};

/// Runs the command if it is one of these; false otherwise.
pub(crate) async fn run(args: &Args, client: &Client) -> Result<bool, CtlError> {
    let out = Out::new(args);
    match args.command.as_str() {
        "add_user" => add_user(args, client, &out).await?,
        "delete_user" => delete_user(args, client, &out).await?,
        "change_password" => change_password(args, client, &out).await?,
        "set_user_tags" => set_user_tags(args, client, &out).await?,
        "add_vhost" => add_vhost(args, client, &out).await?,
        "delete_vhost" => delete_vhost(args, client, &out).await?,
        "set_permissions" => set_permissions(args, client, &out).await?,
        "clear_permissions" => clear_permissions(args, client, &out).await?,
        "set_policy" => set_policy(args, client, &out).await?,
        "clear_policy" => clear_policy(args, client, &out).await?,
        _ => return Ok(false),
    }
    Ok(true)
}

/// The user's record, or 67 with rabbitmqctl's text.
async fn user_record(client: &Client, user: &str) -> Result<Value, CtlError> {
    let response = client.get(&format!("/api/users/{}", seg(user))).await?;
    match response.status {
        200 => Ok(response.json()),
        404 => Err(no_such_user(user)),
        _ => Err(client.unexpected(&response)),
    }
}

fn no_such_user(user: &str) -> CtlError {
    CtlError::new(EX_NOUSER, format!("User \"{user}\" does not exist"))
}

/// Whether GET `path` finds something.
async fn exists(client: &Client, path: &str) -> Result<bool, CtlError> {
    let response = client.get(path).await?;
    match response.status {
        200 => Ok(true),
        404 => Ok(false),
        _ => Err(client.unexpected(&response)),
    }
}

/// A 2xx, or the API's reason with 69.
fn expect_ok(client: &Client, response: super::client::Response) -> Result<(), CtlError> {
    if response.ok() {
        Ok(())
    } else {
        Err(client.unexpected(&response))
    }
}

async fn add_user(args: &Args, client: &Client, out: &Out<'_>) -> Result<(), CtlError> {
    let [user, password] = args.exactly::<2>("a user name and a password")?;
    out.info(&format!("Adding user \"{user}\" ..."));
    let path = format!("/api/users/{}", seg(user));
    if exists(client, &path).await? {
        return Err(CtlError::new(
            EX_SOFTWARE,
            format!("User \"{user}\" already exists"),
        ));
    }
    let response = client
        .put(&path, &json!({"password": password, "tags": ""}))
        .await?;
    expect_ok(client, response)?;
    out.info("Done. Don't forget to grant the user permissions to some virtual hosts! See 'warren ctl set_permissions'.");
    Ok(())
}

async fn delete_user(args: &Args, client: &Client, out: &Out<'_>) -> Result<(), CtlError> {
    let [user] = args.exactly::<1>("a user name")?;
    out.info(&format!("Deleting user \"{user}\" ..."));
    let response = client.delete(&format!("/api/users/{}", seg(user))).await?;
    match response.status {
        404 => Err(no_such_user(user)),
        _ => expect_ok(client, response),
    }
}

async fn change_password(args: &Args, client: &Client, out: &Out<'_>) -> Result<(), CtlError> {
    let [user, password] = args.exactly::<2>("a user name and a password")?;
    out.info(&format!("Changing password for user \"{user}\" ..."));
    // PUT replaces the whole user: keep its tags.
    let record = user_record(client, user).await?;
    let tags = record.get("tags").cloned().unwrap_or(Value::from(""));
    let response = client
        .put(
            &format!("/api/users/{}", seg(user)),
            &json!({"password": password, "tags": tags_text(&tags)}),
        )
        .await?;
    expect_ok(client, response)
}

async fn set_user_tags(args: &Args, client: &Client, out: &Out<'_>) -> Result<(), CtlError> {
    let Some((user, tags)) = args.positional.split_first() else {
        return Err(super::args::usage(
            "set_user_tags takes a user name and tags".to_owned(),
        ));
    };
    out.info(&format!(
        "Setting tags for user \"{user}\" to [{}] ...",
        tags.join(", ")
    ));
    // PUT without a password leaves a user who cannot log in: send its hash back.
    let record = user_record(client, user).await?;
    let mut body = json!({"tags": tags.join(",")});
    for key in ["password_hash", "hashing_algorithm"] {
        if let Some(value) = record.get(key) {
            body[key] = value.clone();
        }
    }
    let response = client
        .put(&format!("/api/users/{}", seg(user)), &body)
        .await?;
    expect_ok(client, response)
}

/// Tags as the comma-separated text PUT takes, from a list or a string.
fn tags_text(tags: &Value) -> String {
    match tags {
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(","),
        Value::String(s) => s.clone(),
        _ => String::new(),
    }
}

async fn add_vhost(args: &Args, client: &Client, out: &Out<'_>) -> Result<(), CtlError> {
    let [vhost] = args.exactly::<1>("a vhost name")?;
    out.info(&format!("Adding vhost \"{vhost}\" ..."));
    let response = client
        .put(&format!("/api/vhosts/{}", seg(vhost)), &json!({}))
        .await?;
    expect_ok(client, response)
}

fn no_such_vhost_quoted(vhost: &str) -> CtlError {
    CtlError::bare(EX_DATAERR, format!("Virtual host '{vhost}' does not exist"))
}

async fn delete_vhost(args: &Args, client: &Client, out: &Out<'_>) -> Result<(), CtlError> {
    let [vhost] = args.exactly::<1>("a vhost name")?;
    out.info(&format!("Deleting vhost \"{vhost}\" ..."));
    let response = client
        .delete(&format!("/api/vhosts/{}", seg(vhost)))
        .await?;
    match response.status {
        404 => Err(no_such_vhost_quoted(vhost)),
        _ => expect_ok(client, response),
    }
}

/// 69 "Virtual host v does not exist" or 67 "User u does not exist", as
/// set_permissions and clear_permissions say them (no quotes).
async fn check_user_and_vhost(client: &Client, user: &str, vhost: &str) -> Result<(), CtlError> {
    if !exists(client, &format!("/api/vhosts/{}", seg(vhost))).await? {
        return Err(CtlError::new(
            EX_UNAVAILABLE,
            format!("Virtual host {vhost} does not exist"),
        ));
    }
    if !exists(client, &format!("/api/users/{}", seg(user))).await? {
        return Err(CtlError::new(
            EX_NOUSER,
            format!("User {user} does not exist"),
        ));
    }
    Ok(())
}

async fn set_permissions(args: &Args, client: &Client, out: &Out<'_>) -> Result<(), CtlError> {
    let [user, configure, write, read] =
        args.exactly::<4>("a user name and configure, write and read patterns")?;
    let vhost = &args.vhost;
    out.info(&format!(
        "Setting permissions for user \"{user}\" in vhost \"{vhost}\" ..."
    ));
    check_user_and_vhost(client, user, vhost).await?;
    let response = client
        .put(
            &format!("/api/permissions/{}/{}", seg(vhost), seg(user)),
            &json!({"configure": configure, "write": write, "read": read}),
        )
        .await?;
    expect_ok(client, response)
}

async fn clear_permissions(args: &Args, client: &Client, out: &Out<'_>) -> Result<(), CtlError> {
    let [user] = args.exactly::<1>("a user name")?;
    let vhost = &args.vhost;
    out.info(&format!(
        "Clearing permissions for user \"{user}\" in vhost \"{vhost}\" ..."
    ));
    check_user_and_vhost(client, user, vhost).await?;
    let response = client
        .delete(&format!("/api/permissions/{}/{}", seg(vhost), seg(user)))
        .await?;
    // Clearing what is not set is done, as rabbitmqctl has it.
    match response.status {
        404 => Ok(()),
        _ => expect_ok(client, response),
    }
}

async fn set_policy(args: &Args, client: &Client, out: &Out<'_>) -> Result<(), CtlError> {
    let [name, pattern, definition] = args.exactly::<3>("a name, a pattern and a definition")?;
    let vhost = &args.vhost;
    out.info(&format!(
        "Setting policy \"{name}\" for pattern \"{pattern}\" to \"{definition}\" with priority \"{}\" for vhost \"{vhost}\" ...",
        args.priority
    ));
    let definition: Value = serde_json::from_str(definition)
        .map_err(|e| CtlError::new(EX_UNAVAILABLE, format!("JSON decoding error. Reason: {e}")))?;
    let response = client
        .put(
            &format!("/api/policies/{}/{}", seg(vhost), seg(name)),
            &json!({
                "pattern": pattern,
                "definition": definition,
                "priority": args.priority,
                "apply-to": args.apply_to,
            }),
        )
        .await?;
    expect_ok(client, response)
}

async fn clear_policy(args: &Args, client: &Client, out: &Out<'_>) -> Result<(), CtlError> {
    let [name] = args.exactly::<1>("a policy name")?;
    let vhost = &args.vhost;
    out.info(&format!(
        "Clearing policy \"{name}\" on vhost \"{vhost}\" ..."
    ));
    let response = client
        .delete(&format!("/api/policies/{}/{}", seg(vhost), seg(name)))
        .await?;
    match response.status {
        404 => Err(CtlError::new(
            EX_UNAVAILABLE,
            "Parameter does not exist".to_owned(),
        )),
        _ => expect_ok(client, response),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_from_either_shape() {
        assert_eq!(tags_text(&json!(["a", "b"])), "a,b");
        assert_eq!(tags_text(&json!("a,b")), "a,b");
        assert_eq!(tags_text(&Value::Null), "");
    }
}
