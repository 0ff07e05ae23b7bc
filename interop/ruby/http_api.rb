# Scenario 18: the management HTTP API as Ruby programs call it with the standard
# library (Net::HTTP, JSON): declare a queue (PUT), see it listed with its arguments,
# publish through bunny with confirms, watch the count reach 3, get the messages back
# through the API, find a connection by its client-provided name, close it with DELETE
# and X-Reason, and see bunny report 320 and that reason. interop.rb requires it.

require "json"
require "net/http"
require "uri"

# Collects what bunny raises asynchronously on a connection (its session error handler).
class CloseCatcher
  def initialize
    @got = Queue.new
  end

  def raise(exception, *_rest)
    @got << exception
  end

  def pop(secs)
    Timeout.timeout(secs) { @got.pop }
  end
end

def api_call(api, method, path, body = nil, headers = {})
  uri = URI(api + path)
  klass = { get: Net::HTTP::Get, put: Net::HTTP::Put, post: Net::HTTP::Post, delete: Net::HTTP::Delete }.fetch(method)
  req = klass.new(uri)
  req.basic_auth("guest", "guest")
  headers.each { |k, v| req[k] = v }
  if body
    req["Content-Type"] = "application/json"
    req.body = JSON.generate(body)
  end
  res = Net::HTTP.start(uri.host, uri.port, open_timeout: 10, read_timeout: 10) { |h| h.request(req) }
  [res.code.to_i, res.body.to_s]
end

def s18(ctx)
  api = ENV["WARREN_INTEROP_HTTP_URL"].to_s.chomp("/")
  q = P + "18"
  qpath = "/api/queues/%2F/" + URI.encode_www_form_component(q).gsub("+", "%20")
  status, text = api_call(api, :put, qpath, { durable: false, auto_delete: false, arguments: { "x-max-length" => 10 } })
  check([201, 204].include?(status), "PUT queue: #{status} #{text}")
  begin
    status, text = api_call(api, :get, "/api/queues/%2F?columns=name,arguments")
    listed = JSON.parse(text).select { |x| x["name"] == q }.map { |x| x["arguments"] }
    check(listed == [{ "x-max-length" => 10 }], "listed as #{listed.inspect}")

    conn = ctx.connect
    ch = conn.create_channel
    ch.confirm_select
    3.times { |i| ch.default_exchange.publish("m#{i}", routing_key: q) }
    check(ch.wait_for_confirms, "publishes nacked")
    conn.close
    # The count is a statistic: RabbitMQ refreshes it every 5 s.
    messages = nil
    deadline = Time.now + 15
    while Time.now < deadline
      messages = JSON.parse(api_call(api, :get, qpath)[1])["messages"]
      break if messages == 3
      sleep 0.25
    end
    check(messages == 3, "the API counts #{messages.inspect} messages, not 3")

    status, text = api_call(api, :post, qpath + "/get", { count: 3, ackmode: "ack_requeue_false", encoding: "auto" })
    check(status == 200, "POST get: #{status} #{text}")
    got = JSON.parse(text).map { |m| "#{m["payload"]}/#{m["payload_encoding"]}" }
    check(got == %w[m0/string m1/string m2/string], "got #{got.inspect}")

    name = P + "18-victim"
    catcher = CloseCatcher.new
    victim = Bunny.new(URL, automatically_recover: false, recover_from_connection_close: false,
                            connection_timeout: 10, log_file: $stderr, connection_name: name,
                            session_error_handler: catcher)
    ctx.conns << victim
    victim.start
    found = nil
    deadline = Time.now + 15
    while found.nil? && Time.now < deadline
      conns = JSON.parse(api_call(api, :get, "/api/connections")[1])
      found = conns.find { |c| (c["client_properties"] || {})["connection_name"] == name }&.fetch("name")
      sleep 0.25 if found.nil?
    end
    check(found, "connection #{name} not listed")
    path = "/api/connections/" + URI.encode_www_form_component(found).gsub("+", "%20")
    status, text = api_call(api, :delete, path, nil, { "X-Reason" => "closed by interop 18" })
    check(status == 204, "DELETE connection: #{status} #{text}")
    e = catcher.pop(10)
    close = e.respond_to?(:connection_close) ? e.connection_close : nil
    check(close && close.reply_code == 320 && close.reply_text == "CONNECTION_FORCED - closed by interop 18",
          "closed with #{e.class}: #{e.message}")
  ensure
    api_call(api, :delete, qpath)
  end
end
