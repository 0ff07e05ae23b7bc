# Interop scenarios 01..15, 17 and 18 (http_api.rb: the management HTTP API) with bunny
# (Debian ruby-bunny).
# Usage: ruby interop.rb AMQP_URL
# Prints exactly one line per scenario on stdout: "NN pass", "NN FAIL reason" or "NN n/a reason".
# Everything else goes to stderr.

require "bunny"
require "bigdecimal"
require "timeout"
require_relative "http_api"

$stdout.sync = true
URL = ARGV[0] or abort("usage: interop.rb AMQP_URL")
P = "interop.ruby."
SCENARIO_TIMEOUT = 20

class Fail < StandardError; end

def check(cond, msg)
  raise Fail, msg unless cond
end

# Per-scenario context: remembers the connections so a timed-out scenario can be torn down.
class Ctx
  attr_reader :conns

  def initialize
    @conns = []
  end

  def connect(url = URL)
    c = Bunny.new(url,
                  heartbeat: 10,
                  frame_max: 65536,
                  automatically_recover: false,
                  recover_from_connection_close: false,
                  connection_timeout: 10,
                  continuation_timeout: 15_000,
                  log_file: $stderr,
                  connection_name: "interop-ruby",
                  # asynchronous connection errors go to the scenario thread, not the main one
                  session_error_handler: Thread.current)
    @conns << c
    c.start
    c
  end

  def close_all
    @conns.each do |c|
      begin
        Timeout.timeout(3) { c.close if c.open? }
      rescue Exception => e
        $stderr.puts "close: #{e.class}: #{e.message}"
        begin
          c.close(false)
        rescue Exception
        end
      end
    end
  end
end

# Declare a fresh exclusive queue (delete leftovers first). Not auto-delete: RabbitMQ deletes an
# auto-delete queue as soon as its last consumer is cancelled; exclusive ones go with the connection.
def fresh_queue(ch, name)
  ch.queue_delete(name)
  ch.queue(name, exclusive: true, auto_delete: false, durable: false)
end

def count(ch, name)
  ch.queue_declare(name, passive: true).message_count
end

# basic.get until empty; returns bodies in order.
def drain(ch, name)
  out = []
  1000.times do
    di, _props, body = ch.basic_get(name, manual_ack: false)
    break if di.nil?
    out << body
  end
  out
end

def get_wait(ch, name, secs = 5, manual_ack: false)
  deadline = Time.now + secs
  loop do
    di, props, body = ch.basic_get(name, manual_ack: manual_ack)
    return [di, props, body] if di
    return [nil, nil, nil] if Time.now > deadline
    sleep 0.02
  end
end

def pop_q(q, secs)
  Timeout.timeout(secs) { q.pop }
rescue Timeout::Error
  nil
end

# ------------------------------------------------------------------ scenarios

def s01(ctx)
  c = ctx.connect
  check(c.heartbeat == 10, "heartbeat negotiated #{c.heartbeat.inspect}, want 10")
  check(c.frame_max == 65536, "frame_max negotiated #{c.frame_max.inspect}, want 65536")
  check(c.channel_max.to_i > 0, "channel_max #{c.channel_max.inspect}")
  check(c.server_properties.is_a?(Hash) && c.server_properties.key?("capabilities"), "server properties lack capabilities")
  ch = c.create_channel
  check(ch.open?, "channel not open")
  ch.close
  check(ch.closed?, "channel still open after close")
  c.close
  check(c.closed?, "connection still open after close")
end

def s02(ctx)
  c = ctx.connect
  ch = c.create_channel
  q = fresh_queue(ch, P + "02.q")
  ch.default_exchange.publish("hello 02", routing_key: q.name)
  ch.default_exchange.publish("second 02", routing_key: q.name)
  di, props, body = get_wait(ch, q.name, 5, manual_ack: true)
  check(di, "basic.get returned empty")
  check(body == "hello 02", "body mismatch: #{body.inspect}")
  check(di.routing_key == q.name, "routing key #{di.routing_key.inspect}")
  check(di.exchange == "", "exchange #{di.exchange.inspect}")
  check(!di.redelivered, "redelivered set")
  check(props[:content_type] == "application/octet-stream", "bunny default content_type #{props[:content_type].inspect}")
  # bunny's GetResponse does not expose basic.get-ok's message_count; check the queue instead
  check(count(ch, q.name) == 1, "queue count after get #{count(ch, q.name)}, want 1")
  ch.ack(di.delivery_tag)
  di2, _p2, body2 = ch.basic_get(q.name, manual_ack: false)
  check(di2 && body2 == "second 02", "second get mismatch #{body2.inspect}")
  di3, _p3, _b3 = ch.basic_get(q.name, manual_ack: false)
  check(di3.nil?, "get-empty expected")
  q.delete
  c.close
end

def s03(ctx)
  c = ctx.connect
  ch = c.create_channel
  q = fresh_queue(ch, P + "03.q")
  10.times { |i| ch.default_exchange.publish("m#{i}", routing_key: q.name) }
  got = Queue.new
  consumer = q.subscribe(manual_ack: true) { |di, _props, body| got << [di, body] }
  10.times do |i|
    d = pop_q(got, 5)
    check(d, "only #{i} of 10 delivered")
    di, body = d
    check(body == "m#{i}", "out of order: got #{body} want m#{i}")
    check(di.delivery_tag.to_i == i + 1, "delivery tag #{di.delivery_tag.to_i} want #{i + 1}")
    ch.ack(di.delivery_tag)
  end
  consumer.cancel
  check(got.empty?, "extra deliveries")
  check(count(ch, q.name) == 0, "queue not empty after acks: #{count(ch, q.name)}")
  q.delete
  c.close
end

def s04(ctx)
  c = ctx.connect
  ch = c.create_channel
  xn = P + "04.fanout"
  ch.exchange_delete(xn)
  x = ch.fanout(xn, auto_delete: true)
  qs = (0..2).map { |i| fresh_queue(ch, P + "04.q#{i}").tap { |q| q.bind(x, routing_key: "ignored#{i}") } }
  x.publish("fan", routing_key: "any.key")
  sleep 0.1
  qs.each do |q|
    got = drain(ch, q.name)
    check(got == ["fan"], "#{q.name} got #{got.inspect}")
  end
  qs.each(&:delete)
  x.delete
  c.close
end

def s05(ctx)
  c = ctx.connect
  ch = c.create_channel
  xn = P + "05.topic"
  ch.exchange_delete(xn)
  x = ch.topic(xn, auto_delete: true)
  patterns = ["a.*", "a.#", "#.z", "*.b.*"]
  qs = patterns.each_with_index.map { |pat, i| fresh_queue(ch, P + "05.q#{i}").tap { |q| q.bind(x, routing_key: pat) } }
  keys = %w[a.b a.b.c x.y.z a q.b.r a.b.z b a.z z x.b.y.z]
  keys.each { |k| x.publish(k, routing_key: k) }
  want = {
    "a.*" => %w[a.b a.z],
    "a.#" => %w[a.b a.b.c a a.b.z a.z],
    "#.z" => %w[x.y.z a.b.z a.z z x.b.y.z],
    "*.b.*" => %w[a.b.c q.b.r a.b.z],
  }
  sleep 0.1
  patterns.each_with_index do |pat, i|
    got = drain(ch, qs[i].name)
    check(got == want[pat], "binding #{pat} got #{got.inspect} want #{want[pat].inspect}")
  end
  qs.each(&:delete)
  x.delete
  c.close
end

def s06(ctx)
  c = ctx.connect
  ch = c.create_channel
  xn = P + "06.headers"
  ch.exchange_delete(xn)
  x = ch.headers(xn, auto_delete: true)
  q_all = fresh_queue(ch, P + "06.all")
  q_any = fresh_queue(ch, P + "06.any")
  q_all.bind(x, arguments: { "x-match" => "all", "color" => "red", "size" => 5 })
  q_any.bind(x, arguments: { "x-match" => "any", "color" => "red", "size" => 5 })
  msgs = [
    ["both", { "color" => "red", "size" => 5 }],
    ["both-extra", { "color" => "red", "size" => 5, "shape" => "round" }],
    ["color-only", { "color" => "red" }],
    ["size-only", { "size" => 5 }],
    ["wrong-values", { "color" => "blue", "size" => 6 }],
    ["size-wrong-type", { "size" => "5" }],
    ["none", { "other" => "x" }],
  ]
  msgs.each { |body, h| x.publish(body, headers: h) }
  x.publish("no-headers")
  sleep 0.1
  got_all = drain(ch, q_all.name)
  got_any = drain(ch, q_any.name)
  check(got_all == %w[both both-extra], "x-match=all got #{got_all.inspect}")
  check(got_any == %w[both both-extra color-only size-only], "x-match=any got #{got_any.inspect}")
  q_all.delete
  q_any.delete
  x.delete
  c.close
end

def s07(ctx)
  c = ctx.connect
  ch = c.create_channel
  q = fresh_queue(ch, P + "07.q")
  acks = 0
  nacks = 0
  m = Mutex.new
  ch.confirm_select(proc { |_tag, _multiple, nack| m.synchronize { nack ? nacks += 1 : acks += 1 } })
  n = 1000
  n.times { |i| ch.default_exchange.publish("c#{i}", routing_key: q.name) }
  ok = ch.wait_for_confirms
  check(ok, "wait_for_confirms reported a nack (nacked_set size #{ch.nacked_set.size})")
  check(ch.unconfirmed_set.empty?, "#{ch.unconfirmed_set.size} unconfirmed")
  check(ch.nacked_set.empty?, "#{ch.nacked_set.size} nacked")
  check(m.synchronize { acks == n && nacks == 0 }, "callback saw acks=#{acks} nacks=#{nacks}")
  check(count(ch, q.name) == n, "queue holds #{count(ch, q.name)} want #{n}")
  q.delete
  c.close
end

def s08(ctx)
  c = ctx.connect
  ch = c.create_channel
  q = fresh_queue(ch, P + "08.q")
  ch.tx_select
  ch.default_exchange.publish("t1", routing_key: q.name)
  ch.default_exchange.publish("t2", routing_key: q.name)
  check(count(ch, q.name) == 0, "uncommitted messages visible: #{count(ch, q.name)}")
  ch.tx_commit
  check(count(ch, q.name) == 2, "after commit queue has #{count(ch, q.name)} want 2")
  ch.default_exchange.publish("t3", routing_key: q.name)
  ch.tx_rollback
  check(count(ch, q.name) == 2, "after rollback queue has #{count(ch, q.name)} want 2")
  ch.tx_commit
  check(count(ch, q.name) == 2, "after empty commit queue has #{count(ch, q.name)} want 2")
  q.delete
  c.close
end

def s09(ctx)
  c = ctx.connect
  ch = c.create_channel
  q = fresh_queue(ch, P + "09.q")
  ch.default_exchange.publish("bounce", routing_key: q.name)
  got = Queue.new
  consumer = q.subscribe(manual_ack: true) { |di, _props, body| got << [di, body] }
  d1 = pop_q(got, 5)
  check(d1, "no first delivery")
  check(!d1[0].redelivered, "first delivery already redelivered")
  check(d1[1] == "bounce", "first body")
  ch.reject(d1[0].delivery_tag, true)
  d2 = pop_q(got, 5)
  check(d2, "no redelivery after reject")
  check(d2[0].redelivered, "redelivered flag not set after reject")
  check(d2[1] == "bounce", "second body")
  check(d2[0].delivery_tag.to_i > d1[0].delivery_tag.to_i, "delivery tag did not increase")
  ch.nack(d2[0].delivery_tag, false, true)
  d3 = pop_q(got, 5)
  check(d3, "no redelivery after nack")
  check(d3[0].redelivered, "redelivered flag not set after nack")
  check(d3[1] == "bounce", "third body")
  ch.ack(d3[0].delivery_tag)
  consumer.cancel
  sleep 0.1
  check(got.empty?, "unexpected extra delivery")
  check(count(ch, q.name) == 0, "queue not empty after ack")
  q.delete
  c.close
end

def s10(ctx)
  c = ctx.connect
  ch = c.create_channel
  xn = P + "10.direct"
  ch.exchange_delete(xn)
  x = ch.direct(xn, auto_delete: true)
  q = fresh_queue(ch, P + "10.q")
  q.bind(x, routing_key: "bound")
  returns = Queue.new
  x.on_return { |ri, props, body| returns << [ri, props, body] }
  x.publish("unroutable body", routing_key: "no.such.binding", mandatory: true, correlation_id: "ret-1")
  r = pop_q(returns, 5)
  check(r, "no basic.return")
  ri, props, body = r
  check(ri.reply_code == 312, "reply code #{ri.reply_code}")
  check(ri.reply_text == "NO_ROUTE", "reply text #{ri.reply_text.inspect}")
  check(ri.exchange == xn, "return exchange #{ri.exchange.inspect}")
  check(ri.routing_key == "no.such.binding", "return routing key #{ri.routing_key.inspect}")
  check(props.correlation_id == "ret-1", "return lost properties")
  check(body == "unroutable body", "return body mismatch")
  # also via the default exchange to a queue that does not exist
  dx = ch.default_exchange
  dx.on_return { |ri2, p2, b2| returns << [ri2, p2, b2] }
  dx.publish("b2", routing_key: P + "10.nosuchqueue", mandatory: true)
  r2 = pop_q(returns, 5)
  check(r2 && r2[0].reply_code == 312, "no 312 return via default exchange")
  check(count(ch, q.name) == 0, "message leaked into bound queue")
  check(ch.open?, "channel closed")
  q.delete
  x.delete
  c.close
end

def s11(ctx)
  c = ctx.connect
  ch = c.create_channel
  missing = P + "11.missing"
  ch.queue_delete(missing)
  begin
    ch.queue_declare(missing, passive: true)
    raise Fail, "passive declare of missing queue succeeded"
  rescue Bunny::NotFound => e
    cl = e.channel_close
    check(cl.reply_code == 404, "reply code #{cl.reply_code}")
    check(cl.reply_text.start_with?("NOT_FOUND - no queue '"), "reply text #{cl.reply_text.inspect}")
    check(cl.reply_text.start_with?("NOT_FOUND - no queue '#{missing}'"), "reply text #{cl.reply_text.inspect}")
    check(cl.class_id == 50 && cl.method_id == 10, "class/method #{cl.class_id}/#{cl.method_id}")
  end
  check(!ch.open?, "channel still open after 404")
  check(c.open?, "connection closed after channel error")
  ch2 = c.create_channel
  q = fresh_queue(ch2, P + "11.q")
  ch2.default_exchange.publish("after error", routing_key: q.name)
  di, _p, body = get_wait(ch2, q.name, 2)
  check(di && body == "after error", "new channel could not use queue")
  q.delete
  c.close
end

def s12(ctx)
  c = ctx.connect
  ch = c.create_channel
  q = fresh_queue(ch, P + "12.q")
  body = Random.new(12345).bytes(10 * 1024 * 1024)
  ch.default_exchange.publish(body, routing_key: q.name)
  di, _p, got = get_wait(ch, q.name, 10)
  check(di, "large message not received")
  check(got.bytesize == body.bytesize, "length #{got.bytesize} want #{body.bytesize}")
  check(got.b == body.b, "body differs")
  ch.default_exchange.publish(body, routing_key: q.name)
  consumed = Queue.new
  consumer = q.subscribe(manual_ack: false) { |_di, _props, b| consumed << b }
  g = pop_q(consumed, 10)
  check(g, "large message not consumed")
  check(g.b == body.b, "consumed body differs")
  consumer.cancel
  q.delete
  c.close
end

def s13(ctx)
  c = ctx.connect
  server = c.create_channel
  client = c.create_channel
  sq = fresh_queue(server, P + "13.rpc")
  seen_reply_to = Queue.new
  sq.subscribe(manual_ack: false) do |_di, props, body|
    seen_reply_to << props.reply_to.to_s
    server.default_exchange.publish("reply:#{body}", routing_key: props.reply_to, correlation_id: props.correlation_id)
  end
  replies = Queue.new
  # the pseudo-queue is not declared, only consumed from (no-ack, as RabbitMQ requires)
  rq = Bunny::Queue.new(client, "amq.rabbitmq.reply-to", no_declare: true)
  rq.subscribe(manual_ack: false) { |_di, props, body| replies << [props, body] }
  3.times do |i|
    corr = "corr-#{i}"
    client.default_exchange.publish("req#{i}", routing_key: sq.name, reply_to: "amq.rabbitmq.reply-to", correlation_id: corr)
    r = pop_q(replies, 5)
    check(r, "no reply for request #{i}")
    check(r[0].correlation_id == corr, "correlation id #{r[0].correlation_id.inspect}")
    check(r[1] == "reply:req#{i}", "reply body #{r[1].inspect}")
    rt = pop_q(seen_reply_to, 1)
    check(rt && rt.start_with?("amq.rabbitmq.reply-to."), "responder saw reply_to #{rt.inspect}")
  end
  sq.delete
  c.close
end

def s14(ctx)
  c = ctx.connect
  ch = c.create_channel
  q = fresh_queue(ch, P + "14.q")
  20.times { |i| ch.default_exchange.publish("p#{i}", routing_key: q.name) }
  deadline = Time.now + 5
  sleep 0.02 while count(ch, q.name) < 20 && Time.now < deadline
  check(count(ch, q.name) == 20, "queue has #{count(ch, q.name)} want 20")
  ch.basic_qos(5)
  got = Queue.new
  bodies = []
  consumer = q.subscribe(manual_ack: true) { |di, _props, body| bodies << body; got << di }
  first = []
  5.times do |i|
    di = pop_q(got, 5)
    check(di, "only #{i} of first 5 delivered")
    first << di
  end
  sleep 0.5
  check(got.empty?, "more than 5 unacked deliveries: #{5 + got.size}")
  ch.ack(first.last.delivery_tag, true)
  5.times do |i|
    di = pop_q(got, 5)
    check(di, "only #{i} of second 5 delivered")
  end
  sleep 0.5
  check(got.empty?, "more than 5 in second batch: #{5 + got.size}")
  check(bodies == (0...10).map { |i| "p#{i}" }, "order #{bodies.inspect}")
  consumer.cancel
  q.delete
  c.close
end

# Normalise a header value to [type, value] recursively, so types are compared too.
def norm(v)
  case v
  when String then ["str", v.b]
  when Symbol then ["str", v.to_s.b]
  when Integer then ["int", v]
  when AMQ::Protocol::Float32Bit then ["float", v.value]
  when Float then ["float", v]
  when true, false then ["bool", v]
  when nil then ["void", nil]
  when Time then ["time", v.to_i]
  when BigDecimal then ["decimal", v.to_s]
  when Array then ["array", v.map { |x| norm(x) }]
  when Hash then ["table", v.map { |k, x| [k.to_s, norm(x)] }.sort_by(&:first)]
  else [v.class.name, v]
  end
end

def s15(ctx)
  c = ctx.connect
  ch = c.create_channel
  q = fresh_queue(ch, P + "15.q")
  # amq-protocol 2.3.2 encodes: String/Symbol -> S, Integer -> l (int64), Float -> d,
  # Float32Bit -> f, true/false -> t, Time -> T, nil -> V, Array -> A, Hash -> F, BigDecimal -> D.
  # It cannot send b/B/s/u/I/i/L or x (byte array: binary Strings go out as S).
  headers = {
    "string" => "hello \u00e9\u4e16",
    "binary-string" => [0, 1, 2, 255, 128, 127].pack("C*"),
    "empty-string" => "",
    "symbol" => :sym,
    "int" => -123_456_789,
    "int64-min" => -(2**63),
    "int64-max" => 2**63 - 1,
    "zero" => 0,
    "bool-true" => true,
    "bool-false" => false,
    "float32" => AMQ::Protocol::Float32Bit.new(3.25),
    "double" => -2.718281828459045,
    # amq-protocol's decimal encoder only gets non-negative whole numbers right (see README)
    "decimal" => BigDecimal("42"),
    "timestamp" => Time.at(1_700_000_000),
    "table" => { "inner-str" => "deep", "inner-int" => 7, "inner-table" => { "k" => "v" } },
    "empty-table" => {},
    "array" => ["a", 1, true, 2.5, nil, { "x" => 1 }, ["n"]],
    "empty-array" => [],
    "void" => nil,
  }
  ts = Time.at(1_700_000_001)
  props = {
    content_type: "application/x-interop",
    content_encoding: "identity",
    headers: headers,
    delivery_mode: 2,
    priority: 7,
    correlation_id: "corr-15",
    reply_to: "interop.ruby.15.reply",
    expiration: "600000",
    message_id: "msg-15",
    timestamp: ts.to_i,
    type: "interop.type",
    user_id: "guest",
    app_id: "interop-ruby",
    cluster_id: "cluster-15",
  }
  ch.default_exchange.publish("props body", props.merge(routing_key: q.name))
  # (Channel#basic_get hands back the properties as a plain Hash)
  di, p, body = get_wait(ch, q.name, 2)
  check(di, "message not received")
  check(body == "props body", "body differs")
  check(p[:content_type] == "application/x-interop", "content_type #{p[:content_type].inspect}")
  check(p[:content_encoding] == "identity", "content_encoding #{p[:content_encoding].inspect}")
  check(p[:delivery_mode] == 2, "delivery_mode #{p[:delivery_mode].inspect}")
  check(p[:priority] == 7, "priority #{p[:priority].inspect}")
  check(p[:correlation_id] == "corr-15", "correlation_id #{p[:correlation_id].inspect}")
  check(p[:reply_to] == "interop.ruby.15.reply", "reply_to #{p[:reply_to].inspect}")
  check(p[:expiration] == "600000", "expiration #{p[:expiration].inspect}")
  check(p[:message_id] == "msg-15", "message_id #{p[:message_id].inspect}")
  check(p[:timestamp].is_a?(Time) && p[:timestamp].to_i == ts.to_i, "timestamp #{p[:timestamp].inspect}")
  check(p[:type] == "interop.type", "type #{p[:type].inspect}")
  check(p[:user_id] == "guest", "user_id #{p[:user_id].inspect}")
  check(p[:app_id] == "interop-ruby", "app_id #{p[:app_id].inspect}")
  check(p[:cluster_id] == "cluster-15", "cluster_id #{p[:cluster_id].inspect}")
  got = p[:headers]
  check(got.is_a?(Hash), "headers missing")
  check(got.keys.sort == headers.keys.sort, "header keys #{got.keys.sort.inspect}")
  headers.each do |k, v|
    w = norm(v)
    g = norm(got[k])
    check(w == g, "header #{k}: got #{g.inspect} want #{w.inspect}")
  end
  q.delete
  c.close
end

# 17: a non-guest user on its own vhost (interop/definitions.json creates them;
# INTEROP_USER, INTEROP_PASS and INTEROP_VHOST name others, e.g. on a shared reference),
# then the same user refused on "/" with 530 at connection.open.
USER = ENV.fetch("INTEROP_USER", "interop")

def as_user(vhost)
  require "uri"
  u = URI.parse(URL)
  esc = ->(s) { URI.encode_www_form_component(s).gsub("+", "%20") }
  "#{u.scheme}://#{esc.(USER)}:#{esc.(ENV.fetch("INTEROP_PASS", "interop-pw"))}@#{u.host}:#{u.port}/#{esc.(vhost)}"
end

def s17(ctx)
  conn = ctx.connect(as_user(ENV.fetch("INTEROP_VHOST", "interop-vh")))
  ch = conn.create_channel
  q = fresh_queue(ch, P + "17")
  ch.default_exchange.publish("own vhost", routing_key: q.name)
  got = Queue.new
  q.subscribe(manual_ack: true) do |di, _props, body|
    got << body
    ch.ack(di.delivery_tag)
  end
  body = Timeout.timeout(10) { got.pop }
  check(body == "own vhost", "got #{body.inspect}")
  conn.close
  expected = "NOT_ALLOWED - access to vhost '/' refused for user '#{USER}'"
  begin
    ctx.connect(as_user("/"))
    raise Fail, "connection.open on / accepted"
  rescue Bunny::NotAllowedError => e
    close = e.connection_close
    check(close.reply_code == 530 && close.reply_text == expected,
          "refused with #{close.reply_code} #{close.reply_text}")
  end
end

# ------------------------------------------------------------------ runner

def run_one(name)
  ctx = Ctx.new
  result = nil
  t = Thread.new do
    Thread.current.report_on_exception = false
    begin
      send(name, ctx)
      result = "pass"
    rescue Fail => e
      result = "FAIL #{e.message}"
    rescue Exception => e
      where = (e.backtrace || []).find { |l| l.include?("interop.rb") && l =~ /in `s\d\d'/ }
      $stderr.puts "#{name}: #{e.class}: #{e.message}\n  #{(e.backtrace || []).first(8).join("\n  ")}"
      result = "FAIL #{e.class}: #{e.message.to_s.lines.first.to_s.strip}#{where ? " at #{where[/:(\d+):/, 1] && "line #{where[/:(\d+):/, 1]}"}" : ""}"
    end
  end
  if t.join(SCENARIO_TIMEOUT).nil?
    result = "FAIL timeout after #{SCENARIO_TIMEOUT} s"
    t.kill
    ctx.conns.each do |c|
      begin
        c.close(false)
      rescue Exception
      end
    end
  end
  ctx.close_all
  result.to_s.gsub(/[\r\n]+/, " ")
end

only = (ENV["ONLY"] || "").split(",").map(&:strip).reject(&:empty?)
((1..15).map { |i| format("%02d", i) } + %w[17 18]).each do |nn|
  next unless only.empty? || only.include?(nn)
  line = begin
    if nn == "18" && ENV["WARREN_INTEROP_HTTP_URL"].to_s.empty?
      "n/a no management API URL (WARREN_INTEROP_HTTP_URL)"
    else
      run_one(:"s#{nn}")
    end
  rescue Exception => e
    "FAIL runner: #{e.class}: #{e.message}"
  end
  puts "#{nn} #{line}"
end
exit 0
