<?php
// Interop scenarios for php-amqplib (Debian package php-amqplib).
// Usage: php scenarios.php URL NN   -> prints one line "NN pass|FAIL reason|n/a reason" on stdout.

declare(strict_types=1);

$autoloaders = array(
    '/usr/share/php/PhpAmqpLib/autoload.php',
);
$loaded = false;
foreach ($autoloaders as $a) {
    if (is_file($a)) {
        require_once $a;
        $loaded = true;
        break;
    }
}
if (!$loaded) {
    fwrite(STDERR, "php-amqplib autoloader not found\n");
    exit(2);
}

use PhpAmqpLib\Connection\AMQPStreamConnection;
use PhpAmqpLib\Channel\AMQPChannel;
use PhpAmqpLib\Message\AMQPMessage;
use PhpAmqpLib\Wire\AMQPTable;
use PhpAmqpLib\Wire\AMQPArray;
use PhpAmqpLib\Wire\AMQPDecimal;
use PhpAmqpLib\Wire\AMQPAbstractCollection as C;
use PhpAmqpLib\Exception\AMQPTimeoutException;
use PhpAmqpLib\Exception\AMQPProtocolChannelException;

const P = 'interop.php.';

class ScenarioFail extends \Exception {}

function fail(string $why): void
{
    throw new ScenarioFail($why);
}

function check(bool $cond, string $why): void
{
    if (!$cond) {
        fail($why);
    }
}

function dbg(string $s): void
{
    fwrite(STDERR, $s . "\n");
}

/** Exposes the negotiated tuning values that php-amqplib keeps protected. */
class InteropConnection extends AMQPStreamConnection
{
    public function negotiatedFrameMax(): int
    {
        return (int) $this->frame_max;
    }

    public function negotiatedChannelMax(): int
    {
        return (int) $this->channel_max;
    }
}

function connect(string $url, int $heartbeat = 0): InteropConnection
{
    $u = parse_url($url);
    if ($u === false || !isset($u['host'])) {
        throw new \InvalidArgumentException("bad URL $url");
    }
    $host = $u['host'];
    $port = isset($u['port']) ? (int) $u['port'] : 5672;
    $user = isset($u['user']) ? rawurldecode($u['user']) : 'guest';
    $pass = isset($u['pass']) ? rawurldecode($u['pass']) : 'guest';
    $vhost = '/';
    if (isset($u['path']) && strlen($u['path']) > 1) {
        $vhost = rawurldecode(substr($u['path'], 1));
    }
    $rw = $heartbeat > 0 ? max(20.0, 2.0 * $heartbeat) : 15.0;
    return new InteropConnection(
        $host, $port, $user, $pass, $vhost,
        false, 'AMQPLAIN', null, 'en_US',
        5.0, $rw, null, false, $heartbeat
    );
}

/** Runs $ch->wait() until $done() is true or $timeout seconds passed. */
function wait_until(AMQPChannel $ch, callable $done, float $timeout, string $what): void
{
    $deadline = microtime(true) + $timeout;
    while (!$done()) {
        $left = $deadline - microtime(true);
        if ($left <= 0) {
            fail("timeout waiting for $what");
        }
        try {
            $ch->wait(null, false, $left);
        } catch (AMQPTimeoutException $e) {
            if (!$done()) {
                fail("timeout waiting for $what");
            }
        }
    }
}

/** Processes incoming frames for $seconds, never failing on timeout. */
function drain_for(AMQPChannel $ch, float $seconds): void
{
    $deadline = microtime(true) + $seconds;
    while (($left = $deadline - microtime(true)) > 0) {
        try {
            $ch->wait(null, false, $left);
        } catch (AMQPTimeoutException $e) {
            return;
        }
    }
}

function declare_count(AMQPChannel $ch, string $q): int
{
    list(, $count, ) = $ch->queue_declare($q, true, false, false, false);
    return (int) $count;
}

function get_all(AMQPChannel $ch, string $q): array
{
    $out = array();
    for ($i = 0; $i < 100; $i++) {
        $m = $ch->basic_get($q, true);
        if ($m === null) {
            break;
        }
        $out[] = $m->getBody();
    }
    sort($out);
    return $out;
}

// ---------------------------------------------------------------- scenarios

function s01(string $url): void
{
    $c = connect($url, 10);
    check($c->isConnected(), 'not connected');
    check($c->getHeartbeat() === 10, 'negotiated heartbeat ' . $c->getHeartbeat() . ' != 10');
    $fm = $c->negotiatedFrameMax();
    check($fm >= 4096, "negotiated frame_max $fm < 4096");
    dbg("negotiated heartbeat={$c->getHeartbeat()} frame_max=$fm channel_max={$c->negotiatedChannelMax()}");
    $props = $c->getServerProperties();
    check(isset($props['product']), 'server properties lack product');
    $ch = $c->channel();
    check($ch->is_open(), 'channel not open');
    $ch->close();
    $c->close();
    check(!$c->isConnected(), 'still connected after close');
}

function s02(string $url): void
{
    $c = connect($url);
    $ch = $c->channel();
    $q = P . '02.q';
    list($qn, $cnt, $cons) = $ch->queue_declare($q, false, false, true, false);
    check($qn === $q, "declare-ok queue name '$qn'");
    check((int) $cnt === 0 && (int) $cons === 0, "fresh queue counts $cnt/$cons");
    $ch->basic_publish(new AMQPMessage('hello-1'), '', $q);
    $ch->basic_publish(new AMQPMessage('hello-2'), '', $q);
    $m = $ch->basic_get($q, false);
    check($m !== null, 'first get empty');
    check($m->getBody() === 'hello-1', 'body ' . $m->getBody());
    check($m->getRoutingKey() === $q, 'routing key ' . $m->getRoutingKey());
    check($m->getExchange() === '', 'exchange ' . $m->getExchange());
    check($m->getMessageCount() === 1, 'message_count ' . var_export($m->getMessageCount(), true) . ' != 1');
    check(!$m->isRedelivered(), 'redelivered set');
    $m->ack();
    $m = $ch->basic_get($q, true);
    check($m !== null && $m->getBody() === 'hello-2', 'second get');
    check($m->getMessageCount() === 0, 'message_count ' . var_export($m->getMessageCount(), true) . ' != 0');
    check($ch->basic_get($q, true) === null, 'get-empty expected');
    $ch->queue_delete($q);
    $c->close();
}

function s03(string $url): void
{
    $c = connect($url);
    $ch = $c->channel();
    $q = P . '03.q';
    $ch->queue_declare($q, false, false, true, false);
    for ($i = 0; $i < 10; $i++) {
        $ch->basic_publish(new AMQPMessage("m$i"), '', $q);
    }
    $got = array();
    $tag = $ch->basic_consume($q, '', false, false, false, false, function (AMQPMessage $m) use (&$got) {
        $got[] = $m->getBody();
        $m->ack();
    });
    wait_until($ch, function () use (&$got) { return count($got) >= 10; }, 10, '10 deliveries');
    $expect = array();
    for ($i = 0; $i < 10; $i++) {
        $expect[] = "m$i";
    }
    check($got === $expect, 'order/contents: ' . implode(',', $got));
    $ch->basic_cancel($tag);
    $n = declare_count($ch, $q);
    check($n === 0, "queue has $n after acks");
    $ch->queue_delete($q);
    $c->close();
}

function s04(string $url): void
{
    $c = connect($url);
    $ch = $c->channel();
    $x = P . '04.fanout';
    $ch->exchange_declare($x, 'fanout', false, false, false);
    try {
        $qs = array();
        for ($i = 1; $i <= 3; $i++) {
            $q = P . "04.q$i";
            $ch->queue_declare($q, false, false, true, false);
            $ch->queue_bind($q, $x, '');
            $qs[] = $q;
        }
        $ch->basic_publish(new AMQPMessage('fan'), $x, 'ignored');
        foreach ($qs as $q) {
            $got = get_all($ch, $q);
            check($got === array('fan'), "$q got [" . implode(',', $got) . ']');
        }
    } finally {
        $ch->exchange_delete($x);
    }
    $c->close();
}

function s05(string $url): void
{
    $c = connect($url);
    $ch = $c->channel();
    $x = P . '05.topic';
    $ch->exchange_declare($x, 'topic', false, false, false);
    try {
        $bind = array('q1' => 'a.*', 'q2' => 'a.#', 'q3' => '#.z', 'q4' => '*.b.*');
        foreach ($bind as $q => $k) {
            $ch->queue_declare(P . "05.$q", false, false, true, false);
            $ch->queue_bind(P . "05.$q", $x, $k);
        }
        foreach (array('a.b', 'a.b.c', 'x.y.z', 'a', 'q.b.r', 'a.z', 'b') as $k) {
            $ch->basic_publish(new AMQPMessage($k), $x, $k);
        }
        $expect = array(
            'q1' => array('a.b', 'a.z'),
            'q2' => array('a', 'a.b', 'a.b.c', 'a.z'),
            'q3' => array('a.z', 'x.y.z'),
            'q4' => array('a.b.c', 'q.b.r'),
        );
        foreach ($expect as $q => $want) {
            $got = get_all($ch, P . "05.$q");
            check($got === $want, "$q ({$bind[$q]}) got [" . implode(',', $got) . '] want [' . implode(',', $want) . ']');
        }
    } finally {
        $ch->exchange_delete($x);
    }
    $c->close();
}

function s06(string $url): void
{
    $c = connect($url);
    $ch = $c->channel();
    $x = P . '06.headers';
    $ch->exchange_declare($x, 'headers', false, false, false);
    try {
        $qa = P . '06.all';
        $qy = P . '06.any';
        $ch->queue_declare($qa, false, false, true, false);
        $ch->queue_declare($qy, false, false, true, false);
        $ch->queue_bind($qa, $x, '', false, new AMQPTable(array('x-match' => 'all', 'h1' => 'v1', 'h2' => 'v2')));
        $ch->queue_bind($qy, $x, '', false, new AMQPTable(array('x-match' => 'any', 'h1' => 'v1', 'h2' => 'v2')));
        $msgs = array(
            'both' => array('h1' => 'v1', 'h2' => 'v2'),
            'both+extra' => array('h1' => 'v1', 'h2' => 'v2', 'h3' => 'v3'),
            'h1only' => array('h1' => 'v1'),
            'h2only' => array('h2' => 'v2', 'h9' => 'x'),
            'wrongval' => array('h1' => 'nope', 'h2' => 'nope'),
            'none' => array(),
        );
        foreach ($msgs as $body => $h) {
            $props = array();
            if ($h) {
                $props['application_headers'] = new AMQPTable($h);
            }
            $ch->basic_publish(new AMQPMessage($body, $props), $x, '');
        }
        $got = get_all($ch, $qa);
        $want = array('both', 'both+extra');
        check($got === $want, 'all got [' . implode(',', $got) . ']');
        $got = get_all($ch, $qy);
        $want = array('both', 'both+extra', 'h1only', 'h2only');
        check($got === $want, 'any got [' . implode(',', $got) . ']');
    } finally {
        $ch->exchange_delete($x);
    }
    $c->close();
}

function s07(string $url): void
{
    $c = connect($url);
    $ch = $c->channel();
    $q = P . '07.q';
    $ch->queue_declare($q, false, false, true, false);
    $acked = 0;
    $nacked = 0;
    $ch->set_ack_handler(function (AMQPMessage $m) use (&$acked) { $acked++; });
    $ch->set_nack_handler(function (AMQPMessage $m) use (&$nacked) { $nacked++; });
    $ch->confirm_select();
    for ($i = 0; $i < 1000; $i++) {
        $ch->basic_publish(new AMQPMessage("c$i"), '', $q);
    }
    $ch->wait_for_pending_acks(15);
    check($nacked === 0, "$nacked nacked");
    check($acked === 1000, "$acked of 1000 acked");
    $n = declare_count($ch, $q);
    check($n === 1000, "queue has $n");
    $ch->queue_delete($q);
    $c->close();
}

function s08(string $url): void
{
    $c = connect($url);
    $ch = $c->channel();
    $q = P . '08.q';
    $ch->queue_declare($q, false, false, true, false);
    $ch->tx_select();
    $ch->basic_publish(new AMQPMessage('t1'), '', $q);
    $ch->basic_publish(new AMQPMessage('t2'), '', $q);
    $n = declare_count($ch, $q);
    check($n === 0, "uncommitted messages visible: $n");
    $ch->tx_commit();
    $n = declare_count($ch, $q);
    check($n === 2, "after commit $n != 2");
    $ch->basic_publish(new AMQPMessage('t3'), '', $q);
    $ch->tx_rollback();
    $n = declare_count($ch, $q);
    check($n === 2, "after rollback $n != 2");
    $ch->queue_delete($q);
    $c->close();
}

function s09(string $url): void
{
    $c = connect($url);
    $ch = $c->channel();
    $q = P . '09.q';
    $ch->queue_declare($q, false, false, true, false);
    $ch->basic_publish(new AMQPMessage('rej'), '', $q);
    $seen = array();
    $done = false;
    $tag = $ch->basic_consume($q, '', false, false, false, false, function (AMQPMessage $m) use (&$seen, &$done) {
        $seen[] = array($m->getBody(), $m->isRedelivered());
        $n = count($seen);
        if ($n === 1) {
            $m->reject(true);
        } elseif ($n === 2) {
            $m->nack(true);
        } else {
            $m->ack();
            $done = true;
        }
    });
    wait_until($ch, function () use (&$done) { return $done; }, 10, 'third delivery');
    check($seen[0] === array('rej', false), 'first delivery ' . json_encode($seen[0]));
    check($seen[1] === array('rej', true), 'second delivery ' . json_encode($seen[1]));
    check($seen[2] === array('rej', true), 'third delivery ' . json_encode($seen[2]));
    $ch->basic_cancel($tag);
    drain_for($ch, 0.2);
    check(count($seen) === 3, 'extra deliveries: ' . count($seen));
    $n = declare_count($ch, $q);
    check($n === 0, "queue has $n after ack");
    $ch->queue_delete($q);
    $c->close();
}

function s10(string $url): void
{
    $c = connect($url);
    $ch = $c->channel();
    $x = P . '10.direct';
    $ch->exchange_declare($x, 'direct', false, false, false);
    try {
        $ret = null;
        $ch->set_return_listener(function ($code, $text, $exchange, $rk, AMQPMessage $m) use (&$ret) {
            $ret = array($code, $text, $exchange, $rk, $m->getBody());
        });
        $ch->basic_publish(new AMQPMessage('unroutable'), $x, 'nobody.home', true);
        wait_until($ch, function () use (&$ret) { return $ret !== null; }, 10, 'basic.return');
        dbg('basic.return: ' . json_encode($ret));
        check($ret[0] === 312, "reply code {$ret[0]}");
        check($ret[1] === 'NO_ROUTE', "reply text '{$ret[1]}'");
        check($ret[2] === $x, "exchange '{$ret[2]}'");
        check($ret[3] === 'nobody.home', "routing key '{$ret[3]}'");
        check($ret[4] === 'unroutable', "body '{$ret[4]}'");
    } finally {
        $ch->exchange_delete($x);
    }
    $c->close();
}

function s11(string $url): void
{
    $c = connect($url);
    $ch = $c->channel();
    $missing = P . '11.does-not-exist';
    $caught = null;
    try {
        $ch->queue_declare($missing, true, false, false, false);
    } catch (AMQPProtocolChannelException $e) {
        $caught = $e;
    }
    check($caught !== null, 'passive declare of missing queue succeeded');
    dbg('channel error: ' . $caught->getCode() . ' ' . $caught->getMessage());
    check($caught->getCode() === 404, 'code ' . $caught->getCode());
    check(strpos($caught->getMessage(), "NOT_FOUND - no queue '") === 0, 'text ' . $caught->getMessage());
    check(!$ch->is_open(), 'channel still open');
    check($c->isConnected(), 'connection closed');
    $ch2 = $c->channel();
    $q = P . '11.q';
    $ch2->queue_declare($q, false, false, true, false);
    $ch2->basic_publish(new AMQPMessage('after'), '', $q);
    $m = $ch2->basic_get($q, true);
    check($m !== null && $m->getBody() === 'after', 'get on new channel');
    $ch2->queue_delete($q);
    $c->close();
}

function s12(string $url): void
{
    $c = connect($url);
    $ch = $c->channel();
    $q = P . '12.q';
    $ch->queue_declare($q, false, false, true, false);
    $body = random_bytes(10 * 1024 * 1024);
    $ch->basic_publish(new AMQPMessage($body), '', $q);
    $m = $ch->basic_get($q, true);
    check($m !== null, 'get empty');
    $got = $m->getBody();
    check(strlen($got) === strlen($body), 'length ' . strlen($got));
    check($got === $body, 'body differs');
    $ch->queue_delete($q);
    $c->close();
}

function s13(string $url): void
{
    $c = connect($url);
    $req = $c->channel();
    $srv = $c->channel();
    $sq = P . '13.rpc';
    $srv->queue_declare($sq, false, false, true, false);
    $served = 0;
    $srv->basic_consume($sq, '', false, false, false, false, function (AMQPMessage $m) use ($srv, &$served) {
        $rt = $m->get('reply_to');
        $reply = new AMQPMessage('reply:' . $m->getBody(), array('correlation_id' => $m->get('correlation_id')));
        $srv->basic_publish($reply, '', $rt);
        $m->ack();
        $served++;
    });
    $answer = null;
    $req->basic_consume('amq.rabbitmq.reply-to', '', false, true, false, false, function (AMQPMessage $m) use (&$answer) {
        $answer = $m;
    });
    $cid = 'corr-' . bin2hex(random_bytes(4));
    $req->basic_publish(new AMQPMessage('ping', array('reply_to' => 'amq.rabbitmq.reply-to', 'correlation_id' => $cid)), '', $sq);
    wait_until($srv, function () use (&$served) { return $served >= 1; }, 10, 'request at responder');
    wait_until($req, function () use (&$answer) { return $answer !== null; }, 10, 'reply');
    check($answer->getBody() === 'reply:ping', 'reply body ' . $answer->getBody());
    check($answer->has('correlation_id') && $answer->get('correlation_id') === $cid, 'correlation_id mismatch');
    $srv->queue_delete($sq);
    $c->close();
}

function s14(string $url): void
{
    $c = connect($url);
    $ch = $c->channel();
    $q = P . '14.q';
    $ch->queue_declare($q, false, false, true, false);
    for ($i = 0; $i < 20; $i++) {
        $ch->basic_publish(new AMQPMessage("p$i"), '', $q);
    }
    $ch->basic_qos(0, 5, false);
    $got = array();
    $tag = $ch->basic_consume($q, '', false, false, false, false, function (AMQPMessage $m) use (&$got) {
        $got[] = $m;
    });
    wait_until($ch, function () use (&$got) { return count($got) >= 5; }, 10, 'first 5');
    drain_for($ch, 0.5);
    check(count($got) === 5, count($got) . ' unacked deliveries with prefetch 5');
    $last = $got[4];
    $ch->basic_ack($last->getDeliveryTag(), true);
    wait_until($ch, function () use (&$got) { return count($got) >= 10; }, 10, 'next 5');
    drain_for($ch, 0.5);
    check(count($got) === 10, count($got) . ' deliveries after acking 5');
    $bodies = array_map(function ($m) { return $m->getBody(); }, $got);
    $want = array();
    for ($i = 0; $i < 10; $i++) {
        $want[] = "p$i";
    }
    check($bodies === $want, 'order ' . implode(',', $bodies));
    $ch->basic_cancel($tag);
    $ch->queue_delete($q);
    $c->close();
}

/** Compares two collections (as read: [type, value] pairs), type by type. */
function same_collection($a, $b, string $path): void
{
    $ra = iterator_to_array_pairs($a);
    $rb = iterator_to_array_pairs($b);
    $ka = array_keys($ra);
    $kb = array_keys($rb);
    if ($a instanceof AMQPTable) {
        // field tables are compared as maps (key order is not significant)
        sort($ka, SORT_STRING);
        sort($kb, SORT_STRING);
    }
    check($ka === $kb, "$path keys " . json_encode($kb) . ' vs ' . json_encode($ka));
    foreach ($ra as $k => $pa) {
        $pb = $rb[$k];
        list($ta, $va) = $pa;
        list($tb, $vb) = $pb;
        check($ta === $tb, "$path.$k type $tb != $ta");
        if ($va instanceof C) {
            check($vb instanceof C, "$path.$k not a collection");
            same_collection($va, $vb, "$path.$k");
        } elseif ($va instanceof AMQPDecimal) {
            check($vb instanceof AMQPDecimal && $va->getE() === $vb->getE() && $va->getN() === $vb->getN(), "$path.$k decimal");
        } elseif ($ta === C::T_BOOL) {
            check((bool) $va === (bool) $vb, "$path.$k bool");
        } else {
            check($va === $vb, "$path.$k value " . var_export($vb, true) . ' != ' . var_export($va, true));
        }
    }
}

function iterator_to_array_pairs($coll): array
{
    $out = array();
    foreach ($coll as $k => $v) {
        $out[$k] = $v;
    }
    return $out;
}

function s15(string $url): void
{
    $c = connect($url);
    $ch = $c->channel();
    $q = P . '15.q';
    $ch->queue_declare($q, false, false, true, false);

    $nested = new AMQPTable();
    $nested->set('inner', 'yes', C::T_STRING_LONG);
    $nested->set('n', 7, C::T_INT_LONG);
    $arr = new AMQPArray();
    $arr->push('s', C::T_STRING_LONG);
    $arr->push(42, C::T_INT_LONG);
    $arr->push(true, C::T_BOOL);
    $arr->push(new AMQPTable(array('k' => 'v')));
    $arr->push(null, C::T_VOID);

    $h = new AMQPTable();
    $h->set('str', 'a string ünïcode', C::T_STRING_LONG);
    $h->set('i8', -100, C::T_INT_SHORTSHORT);
    $h->set('u8', 200, C::T_INT_SHORTSHORT_U);
    $h->set('i16', -30000, C::T_INT_SHORT);
    $h->set('u16', 60000, C::T_INT_SHORT_U);
    $h->set('i32', -2000000000, C::T_INT_LONG);
    $h->set('u32', 4000000000, C::T_INT_LONG_U);
    $h->set('i64', -9000000000000000000, C::T_INT_LONGLONG);
    $h->set('bool_t', true, C::T_BOOL);
    $h->set('bool_f', false, C::T_BOOL);
    // php-amqplib 3.5 can read float ('f') and double ('d') but its writer rejects them
    // ("Unsupported type 18/19"), so they cannot be sent from this library.
    $h->set('decimal', new AMQPDecimal(12345, 2), C::T_DECIMAL);
    $h->set('ts', 1700000000, C::T_TIMESTAMP);
    $h->set('table', $nested);
    $h->set('array', $arr);
    $h->set('void', null, C::T_VOID);
    $h->set('bytes', "\x00\x01\xfe\xff binary", C::T_BYTES);

    $props = array(
        'content_type' => 'application/x-interop',
        'content_encoding' => 'identity',
        'application_headers' => $h,
        'delivery_mode' => 2,
        'priority' => 7,
        'correlation_id' => 'corr-15',
        'reply_to' => 'reply.here',
        'expiration' => '600000',
        'message_id' => 'msg-15',
        'timestamp' => 1700000123,
        'type' => 'interop.type',
        'user_id' => 'guest',
        'app_id' => 'interop-php',
        'cluster_id' => 'cluster-15',
    );
    $ch->basic_publish(new AMQPMessage('props', $props), '', $q);
    $m = $ch->basic_get($q, true);
    check($m !== null, 'get empty');
    check($m->getBody() === 'props', 'body');
    $got = $m->get_properties();
    dbg('received properties: ' . implode(',', array_keys($got)));
    foreach ($props as $k => $v) {
        if ($k === 'application_headers') {
            continue;
        }
        check(array_key_exists($k, $got), "property $k missing");
        check($got[$k] === $v, "property $k " . var_export($got[$k], true) . ' != ' . var_export($v, true));
    }
    check(array_key_exists('application_headers', $got), 'headers missing');
    same_collection($h, $got['application_headers'], 'headers');
    $ch->queue_delete($q);
    $c->close();
}

// 17: a non-guest user on its own vhost (interop/definitions.json creates them;
// INTEROP_USER, INTEROP_PASS and INTEROP_VHOST name others, e.g. on a shared reference),
// then the same user refused on "/" with 530 at connection.open.
function env_or(string $key, string $default): string
{
    $v = getenv($key);
    return ($v === false || $v === '') ? $default : $v;
}

/** $url with the scenario user's credentials and $vhost. */
function as_user(string $url, string $vhost): string
{
    $u = parse_url($url);
    $port = isset($u['port']) ? (int) $u['port'] : 5672;
    return sprintf('amqp://%s:%s@%s:%d/%s', rawurlencode(env_or('INTEROP_USER', 'interop')),
        rawurlencode(env_or('INTEROP_PASS', 'interop-pw')), $u['host'], $port, rawurlencode($vhost));
}

function s17(string $url): void
{
    $c = connect(as_user($url, env_or('INTEROP_VHOST', 'interop-vh')));
    $ch = $c->channel();
    $q = P . '17';
    $ch->queue_declare($q, false, false, true, false);
    $ch->basic_publish(new AMQPMessage('own vhost'), '', $q);
    $got = null;
    $ch->basic_consume($q, '', false, false, false, false, function (AMQPMessage $m) use (&$got) {
        $got = $m->getBody();
        $m->ack();
    });
    wait_until($ch, function () use (&$got) { return $got !== null; }, 10, 'delivery');
    check($got === 'own vhost', "got $got");
    $c->close();
    // php-amqplib throws AMQPConnectionClosedException: the close's text with the failing
    // method appended, and its reply code as the exception's code.
    $expected = "NOT_ALLOWED - access to vhost '/' refused for user '" . env_or('INTEROP_USER', 'interop') . "'";
    try {
        connect(as_user($url, '/'));
        fail('connection.open on / accepted');
    } catch (\PhpAmqpLib\Exception\AMQPConnectionClosedException $e) {
        check($e->getCode() === 530 && $e->getMessage() === "$expected(10, 40)",
            'refused with ' . $e->getCode() . ' ' . $e->getMessage());
    }
}

// ---------------------------------------------------------------- main

if ($argc < 3) {
    fwrite(STDERR, "usage: php scenarios.php URL NN\n");
    exit(2);
}
$url = $argv[1];
$nn = sprintf('%02d', (int) $argv[2]);
$fn = 's' . $nn;
if (!function_exists($fn)) {
    echo "$nn n/a no such scenario\n";
    exit(0);
}
try {
    $fn($url);
    echo "$nn pass\n";
} catch (\Throwable $e) {
    $msg = $e instanceof ScenarioFail ? $e->getMessage() : get_class($e) . ': ' . $e->getMessage();
    $msg = preg_replace('/\s+/', ' ', $msg);
    dbg("$nn: $msg");
    if (!($e instanceof ScenarioFail)) {
        dbg($e->getTraceAsString());
    }
    echo "$nn FAIL " . substr($msg, 0, 200) . "\n";
}
exit(0);
