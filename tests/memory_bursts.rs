//! What a burst leaves queued for a connection (issue 16, memory given back): a publish
//! whose confirm waits for no store must send its connection nothing through the
//! outbox. Before, every transient confirm made a store completion whose drop sent an
//! answer to be ignored; during a burst they piled up in the outbox faster than the
//! connection took them (about 450 MB after a 5 s burst), and the allocator kept that.
//!
//! Counted with the `test-hooks` counter `Memory::store_answers` (store answers the
//! connections took from their outboxes). How much the process keeps after a burst is
//! measured by benches/idle-memory.sh, not here: resident memory is no test figure.
mod common;

use common::{declare, durable, publish_with, within, TestBroker};
use lapin::options::{ConfirmSelectOptions, QueueDeclareOptions};
use lapin::BasicProperties;

const BURST: u64 = 2000;

#[tokio::test]
async fn transient_confirms_queue_nothing_for_their_connection() {
    let b = TestBroker::start().await;
    let (_conn, ch) = b.channel().await;
    within(ch.confirm_select(ConfirmSelectOptions::default()))
        .await
        .expect("confirm.select");
    declare(&ch, "transient", QueueDeclareOptions::default()).await;
    declare(&ch, "durable", durable()).await;
    let transient = BasicProperties::default().with_delivery_mode(1);
    let persistent = BasicProperties::default().with_delivery_mode(2);
    // None of these is written to the store: a transient message (in a transient or a
    // durable queue) or a persistent one in a transient queue is confirmed at once.
    for _ in 0..BURST {
        publish_with(&ch, "", "transient", b"t", transient.clone()).await;
        publish_with(&ch, "", "durable", b"t", transient.clone()).await;
        publish_with(&ch, "", "transient", b"p", persistent.clone()).await;
    }
    let returned = within(ch.wait_for_confirms()).await.expect("confirms");
    assert!(returned.is_empty());

    // A persistent message in a durable queue waits for the store: its answer comes
    // back through the outbox, after anything sent there before it (one queue, in
    // order), and its confirm only once the connection took it. So when that confirm
    // is here, every answer sent before it has been counted too.
    publish_with(&ch, "", "durable", b"kept", persistent).await;
    let returned = within(ch.wait_for_confirms()).await.expect("confirm");
    assert!(returned.is_empty());

    // Its own answer counts once (none if it comes in another kind of outbox item, as
    // a store that answers a whole sync at once may send); one per transient confirm
    // would make thousands.
    let answers = b.server.broker().memory.store_answers();
    assert!(
        answers <= 1,
        "{answers} store answers went through the outbox: only the stored message's may"
    );
    assert_eq!(b.server.counters().confirmed, 3 * BURST + 1);
    assert_eq!(
        b.server
            .queue_counters("/", "durable")
            .map(|q| q.messages_ready),
        Some(BURST + 1)
    );
}
