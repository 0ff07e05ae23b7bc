//! The refusal of exchange.declare for a type no exchange module serves: 503
//! COMMAND_INVALID, a connection error, in RabbitMQ 3.10's two wordings.
//!
//! Called by the vhost's declare; pure, never touches the topology.
//!
//! RabbitMQ turns the type name into an Erlang atom only if that atom already exists
//! (`binary_to_existing_atom`): a name that is no atom in the node gets "unknown
//! exchange type", a name that is an atom but no registered type gets "invalid exchange
//! type". Which names are atoms depends on the modules the node loaded, so warren keeps
//! the names observed as atoms on a stock 3.10.8 node (probed with `rabbitmqctl eval`)
//! among those clients are likely to send by mistake; every other name is "unknown",
//! which is what RabbitMQ answers for made-up names.

use crate::error::Exception;

/// Names that are atoms in a stock RabbitMQ 3.10.8 node (and are no exchange type).
const ATOMS: &[&str] = &[
    "",
    "foo",
    "bar",
    "test",
    "Direct",
    "match",
    "stream",
    "classic",
    "quorum",
    "local",
    "federation",
    "default",
    "system",
    "internal",
    "true",
    "false",
    "undefined",
    "error",
    "ok",
    "none",
    "all",
    "any",
    "exchange",
    "queue",
    "x",
    "a",
    "b",
    "random",
    "hash",
    "rpc",
    "work",
    "events",
    "json",
    "string",
    "basic",
    "event",
    "delay",
    "tx",
    "message",
    "type",
    "name",
    "dummy",
    "invalid",
    "unknown",
    "bad",
];

/// 503 for exchange type `kind`, worded as RabbitMQ words it.
pub fn refusal(kind: &str) -> Exception {
    let word = if ATOMS.contains(&kind) {
        "invalid"
    } else {
        "unknown"
    };
    Exception::command_invalid(format!("{word} exchange type '{kind}'"))
}

#[cfg(test)]
mod tests {
    use super::refusal;

    #[test]
    fn made_up_names_are_unknown_and_atoms_invalid() {
        assert_eq!(
            refusal("bogus").text,
            "COMMAND_INVALID - unknown exchange type 'bogus'"
        );
        assert_eq!(
            refusal("x-delayed-message").text,
            "COMMAND_INVALID - unknown exchange type 'x-delayed-message'"
        );
        assert_eq!(
            refusal("foo").text,
            "COMMAND_INVALID - invalid exchange type 'foo'"
        );
        assert_eq!(
            refusal("").text,
            "COMMAND_INVALID - invalid exchange type ''"
        );
    }
}
