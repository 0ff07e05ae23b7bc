/*
 * Interop scenarios for librabbitmq (rabbitmq-c), the C AMQP 0-9-1 client.
 * Usage: scenarios URL NN   -> prints one line "NN pass|FAIL reason|n/a reason".
 * Each invocation runs one scenario in its own process (run.sh loops over them).
 */
#define _POSIX_C_SOURCE 200809L
#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define P "interop.c."

static char scen[3] = "??";
static amqp_connection_state_t conn;
static const char *url_arg;

/* ------------------------------------------------------------------ utils */

static void fail(const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  for (char *p = buf; *p; p++)
    if (*p == '\n' || *p == '\r') *p = ' ';
  fprintf(stderr, "%s: %s\n", scen, buf);
  printf("%s FAIL %s\n", scen, buf);
  fflush(stdout);
  exit(0);
}

#define CHECK(cond, ...)        \
  do {                          \
    if (!(cond)) fail(__VA_ARGS__); \
  } while (0)

static void on_alarm(int sig) {
  (void)sig;
  static const char tail[] = " FAIL timeout (internal alarm)\n";
  ssize_t r = write(1, scen, 2);
  r = write(1, tail, sizeof tail - 1);
  (void)r;
  _exit(0);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static struct timeval tv_of(double s) {
  struct timeval tv;
  if (s < 0) s = 0;
  tv.tv_sec = (time_t)s;
  tv.tv_usec = (suseconds_t)((s - (double)tv.tv_sec) * 1e6);
  return tv;
}

static int bytes_eq(amqp_bytes_t b, const char *s) {
  size_t n = strlen(s);
  return b.len == n && (n == 0 || memcmp(b.bytes, s, n) == 0);
}

static int bytes_eqb(amqp_bytes_t a, amqp_bytes_t b) {
  return a.len == b.len && (a.len == 0 || memcmp(a.bytes, b.bytes, a.len) == 0);
}

static const char *bstr(amqp_bytes_t b) {
  static char buf[4][256];
  static int i;
  char *o = buf[i++ & 3];
  size_t n = b.len < 255 ? b.len : 255;
  memcpy(o, b.bytes, n);
  o[n] = 0;
  return o;
}

/* Describes a non-normal rpc reply; fails. */
static void rpc_fail(amqp_rpc_reply_t r, const char *what) {
  switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
      return;
    case AMQP_RESPONSE_NONE:
      fail("%s: missing rpc reply", what);
      break;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
      fail("%s: %s", what, amqp_error_string2(r.library_error));
      break;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
      if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        amqp_connection_close_t *m = r.reply.decoded;
        fail("%s: connection closed %u %s", what, m->reply_code, bstr(m->reply_text));
      } else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        amqp_channel_close_t *m = r.reply.decoded;
        fail("%s: channel closed %u %s", what, m->reply_code, bstr(m->reply_text));
      } else {
        fail("%s: unexpected server method 0x%08x", what, r.reply.id);
      }
      break;
  }
  fail("%s: unknown reply type", what);
}

static void rpc_ok(const char *what) { rpc_fail(amqp_get_rpc_reply(conn), what); }

static void st_ok(int status, const char *what) {
  if (status != AMQP_STATUS_OK) fail("%s: %s", what, amqp_error_string2(status));
}

/* A connection whose socket is open to the URL's host and port, not yet logged in; *ci
 * holds the parsed URL, whose strings live in *u (the caller frees it). */
static amqp_connection_state_t open_socket(struct amqp_connection_info *ci, char **u) {
  *u = strdup(url_arg);
  amqp_default_connection_info(ci);
  if (amqp_parse_url(*u, ci) != AMQP_STATUS_OK) fail("cannot parse URL %s", url_arg);
  amqp_connection_state_t c = amqp_new_connection();
  amqp_socket_t *s = amqp_tcp_socket_new(c);
  CHECK(s != NULL, "cannot create socket");
  struct timeval to = tv_of(5);
  st_ok(amqp_socket_open_noblock(s, ci->host, ci->port, &to), "socket open");
  struct timeval rpc_to = tv_of(10);
  amqp_set_rpc_timeout(c, &rpc_to);
  return c;
}

static amqp_connection_state_t connect_url(int frame_max, int heartbeat) {
  struct amqp_connection_info ci;
  char *u;
  amqp_connection_state_t c = open_socket(&ci, &u);
  amqp_rpc_reply_t r = amqp_login(c, ci.vhost, 0, frame_max, heartbeat, AMQP_SASL_METHOD_PLAIN,
                                  ci.user, ci.password);
  rpc_fail(r, "login");
  free(u);
  return c;
}

static void open_channel(amqp_channel_t ch) {
  amqp_channel_open(conn, ch);
  rpc_ok("channel.open");
}

static void close_all(void) {
  rpc_fail(amqp_connection_close(conn, AMQP_REPLY_SUCCESS), "connection.close");
  st_ok(amqp_destroy_connection(conn), "destroy connection");
}

static void declare_excl(amqp_channel_t ch, const char *q) {
  amqp_queue_declare_ok_t *ok =
      amqp_queue_declare(conn, ch, amqp_cstring_bytes(q), 0, 0, 1, 0, amqp_empty_table);
  rpc_ok("queue.declare");
  CHECK(bytes_eq(ok->queue, q), "declare-ok queue name %s", bstr(ok->queue));
}

static uint32_t passive_count(amqp_channel_t ch, const char *q) {
  amqp_queue_declare_ok_t *ok =
      amqp_queue_declare(conn, ch, amqp_cstring_bytes(q), 1, 0, 0, 0, amqp_empty_table);
  rpc_ok("passive queue.declare");
  return ok->message_count;
}

static void delete_queue(amqp_channel_t ch, const char *q) {
  amqp_queue_delete(conn, ch, amqp_cstring_bytes(q), 0, 0);
  rpc_ok("queue.delete");
}

static void declare_exchange(amqp_channel_t ch, const char *x, const char *type) {
  amqp_exchange_declare(conn, ch, amqp_cstring_bytes(x), amqp_cstring_bytes(type), 0, 0, 0, 0,
                        amqp_empty_table);
  rpc_ok("exchange.declare");
}

static void delete_exchange(amqp_channel_t ch, const char *x) {
  amqp_exchange_delete(conn, ch, amqp_cstring_bytes(x), 0);
  rpc_ok("exchange.delete");
}

static void bind_q(amqp_channel_t ch, const char *q, const char *x, const char *key,
                   amqp_table_t args) {
  amqp_queue_bind(conn, ch, amqp_cstring_bytes(q), amqp_cstring_bytes(x), amqp_cstring_bytes(key),
                  args);
  rpc_ok("queue.bind");
}

static void publish(amqp_channel_t ch, const char *x, const char *key, amqp_bytes_t body,
                    const amqp_basic_properties_t *props, int mandatory) {
  st_ok(amqp_basic_publish(conn, ch, amqp_cstring_bytes(x), amqp_cstring_bytes(key), mandatory, 0,
                           props, body),
        "basic.publish");
}

static void publish_s(amqp_channel_t ch, const char *x, const char *key, const char *body) {
  publish(ch, x, key, amqp_cstring_bytes(body), NULL, 0);
}

/* basic.get; returns 1 and fills *msg (and *ok_out) when a message came, 0 on get-empty. */
static int get_msg(amqp_channel_t ch, const char *q, int no_ack, amqp_message_t *msg,
                   amqp_basic_get_ok_t *ok_out) {
  amqp_maybe_release_buffers(conn);
  amqp_rpc_reply_t r = amqp_basic_get(conn, ch, amqp_cstring_bytes(q), no_ack);
  rpc_fail(r, "basic.get");
  if (r.reply.id == AMQP_BASIC_GET_EMPTY_METHOD) return 0;
  CHECK(r.reply.id == AMQP_BASIC_GET_OK_METHOD, "basic.get answered 0x%08x", r.reply.id);
  amqp_basic_get_ok_t *ok = r.reply.decoded;
  if (ok_out) {
    *ok_out = *ok;
    ok_out->exchange = amqp_bytes_malloc_dup(ok->exchange);
    ok_out->routing_key = amqp_bytes_malloc_dup(ok->routing_key);
  }
  rpc_fail(amqp_read_message(conn, ch, msg, 0), "read message after get-ok");
  return 1;
}

/* Drains a queue with no-ack gets; returns the bodies joined with ',' in sorted order. */
static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *get_all_sorted(amqp_channel_t ch, const char *q) {
  char *items[64];
  int n = 0;
  amqp_message_t m;
  while (n < 64 && get_msg(ch, q, 1, &m, NULL)) {
    items[n] = strndup(m.body.bytes, m.body.len);
    n++;
    amqp_destroy_message(&m);
  }
  qsort(items, n, sizeof items[0], cmp_str);
  static char out[8][1024];
  static int k;
  char *o = out[k++ & 7];
  o[0] = 0;
  for (int i = 0; i < n; i++) {
    if (i) strcat(o, ",");
    strncat(o, items[i], 1000 - strlen(o));
    free(items[i]);
  }
  return o;
}

/*
 * Waits for one delivery up to `timeout` seconds. Returns 1 with *env filled,
 * 0 on timeout. Non-delivery frames are read and ignored, but channel/connection
 * close fails the scenario.
 */
static int next_delivery(amqp_envelope_t *env, double timeout) {
  double deadline = now_s() + timeout;
  for (;;) {
    double left = deadline - now_s();
    if (left <= 0) return 0;
    struct timeval tv = tv_of(left);
    amqp_maybe_release_buffers(conn);
    amqp_rpc_reply_t r = amqp_consume_message(conn, env, &tv, 0);
    if (r.reply_type == AMQP_RESPONSE_NORMAL) return 1;
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT)
      return 0;
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
        r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
      amqp_frame_t f;
      st_ok(amqp_simple_wait_frame(conn, &f), "reading non-delivery frame");
      if (f.frame_type == AMQP_FRAME_METHOD) {
        if (f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD) {
          amqp_channel_close_t *m = f.payload.method.decoded;
          fail("channel closed %u %s", m->reply_code, bstr(m->reply_text));
        }
        if (f.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD) {
          amqp_connection_close_t *m = f.payload.method.decoded;
          fail("connection closed %u %s", m->reply_code, bstr(m->reply_text));
        }
        fprintf(stderr, "%s: ignoring method %s while waiting for a delivery\n", scen,
                amqp_method_name(f.payload.method.id));
      }
      continue;
    }
    rpc_fail(r, "consume");
  }
}

static char *consume(amqp_channel_t ch, const char *q, int no_ack) {
  amqp_basic_consume_ok_t *ok = amqp_basic_consume(conn, ch, amqp_cstring_bytes(q), amqp_empty_bytes,
                                                   0, no_ack, 0, amqp_empty_table);
  rpc_ok("basic.consume");
  return strndup(ok->consumer_tag.bytes, ok->consumer_tag.len);
}

static void cancel(amqp_channel_t ch, const char *tag) {
  amqp_basic_cancel(conn, ch, amqp_cstring_bytes(tag));
  rpc_ok("basic.cancel");
}

/* ------------------------------------------------------------- scenarios */

static void s01(void) {
  conn = connect_url(65536, 10);
  int hb = amqp_get_heartbeat(conn), fm = amqp_get_frame_max(conn), cm = amqp_get_channel_max(conn);
  fprintf(stderr, "01: negotiated heartbeat=%d frame_max=%d channel_max=%d\n", hb, fm, cm);
  CHECK(hb == 10, "negotiated heartbeat %d != 10", hb);
  CHECK(fm == 65536, "negotiated frame_max %d != 65536", fm);
  CHECK(cm > 0, "negotiated channel_max %d", cm);
  amqp_table_t *sp = amqp_get_server_properties(conn);
  int has_product = 0;
  for (int i = 0; sp && i < sp->num_entries; i++)
    if (bytes_eq(sp->entries[i].key, "product")) has_product = 1;
  CHECK(has_product, "server properties lack product");
  open_channel(1);
  rpc_fail(amqp_channel_close(conn, 1, AMQP_REPLY_SUCCESS), "channel.close");
  close_all();
}

static void s02(void) {
  conn = connect_url(AMQP_DEFAULT_FRAME_SIZE, 0);
  open_channel(1);
  const char *q = P "02.q";
  amqp_queue_declare_ok_t *ok =
      amqp_queue_declare(conn, 1, amqp_cstring_bytes(q), 0, 0, 1, 0, amqp_empty_table);
  rpc_ok("queue.declare");
  CHECK(bytes_eq(ok->queue, q), "declare-ok name %s", bstr(ok->queue));
  CHECK(ok->message_count == 0 && ok->consumer_count == 0, "fresh queue counts %u/%u",
        ok->message_count, ok->consumer_count);
  publish_s(1, "", q, "hello-1");
  publish_s(1, "", q, "hello-2");
  amqp_message_t m;
  amqp_basic_get_ok_t g;
  CHECK(get_msg(1, q, 0, &m, &g), "first get empty");
  CHECK(bytes_eq(m.body, "hello-1"), "body %s", bstr(m.body));
  CHECK(bytes_eq(g.routing_key, q), "routing key %s", bstr(g.routing_key));
  CHECK(bytes_eq(g.exchange, ""), "exchange %s", bstr(g.exchange));
  CHECK(g.message_count == 1, "message_count %u != 1", g.message_count);
  CHECK(!g.redelivered, "redelivered set");
  st_ok(amqp_basic_ack(conn, 1, g.delivery_tag, 0), "basic.ack");
  amqp_destroy_message(&m);
  CHECK(get_msg(1, q, 1, &m, &g), "second get empty");
  CHECK(bytes_eq(m.body, "hello-2"), "body %s", bstr(m.body));
  CHECK(g.message_count == 0, "message_count %u != 0", g.message_count);
  amqp_destroy_message(&m);
  CHECK(!get_msg(1, q, 1, &m, NULL), "expected get-empty");
  delete_queue(1, q);
  close_all();
}

static void s03(void) {
  conn = connect_url(AMQP_DEFAULT_FRAME_SIZE, 0);
  open_channel(1);
  const char *q = P "03.q";
  declare_excl(1, q);
  char b[32];
  for (int i = 0; i < 10; i++) {
    snprintf(b, sizeof b, "m%d", i);
    publish_s(1, "", q, b);
  }
  char *tag = consume(1, q, 0);
  for (int i = 0; i < 10; i++) {
    amqp_envelope_t env;
    CHECK(next_delivery(&env, 10), "timeout waiting for delivery %d", i);
    snprintf(b, sizeof b, "m%d", i);
    CHECK(bytes_eq(env.message.body, b), "delivery %d body %s", i, bstr(env.message.body));
    CHECK(bytes_eq(env.consumer_tag, tag), "consumer tag %s", bstr(env.consumer_tag));
    st_ok(amqp_basic_ack(conn, 1, env.delivery_tag, 0), "basic.ack");
    amqp_destroy_envelope(&env);
  }
  cancel(1, tag);
  uint32_t n = passive_count(1, q);
  CHECK(n == 0, "queue has %u after acks", n);
  delete_queue(1, q);
  close_all();
}

static void s04(void) {
  conn = connect_url(AMQP_DEFAULT_FRAME_SIZE, 0);
  open_channel(1);
  const char *x = P "04.fanout";
  declare_exchange(1, x, "fanout");
  const char *qs[3] = {P "04.q1", P "04.q2", P "04.q3"};
  for (int i = 0; i < 3; i++) {
    declare_excl(1, qs[i]);
    bind_q(1, qs[i], x, "", amqp_empty_table);
  }
  publish_s(1, x, "ignored", "fan");
  for (int i = 0; i < 3; i++) {
    char *got = get_all_sorted(1, qs[i]);
    CHECK(strcmp(got, "fan") == 0, "%s got [%s]", qs[i], got);
  }
  delete_exchange(1, x);
  close_all();
}

static void s05(void) {
  conn = connect_url(AMQP_DEFAULT_FRAME_SIZE, 0);
  open_channel(1);
  const char *x = P "05.topic";
  declare_exchange(1, x, "topic");
  const char *qs[4] = {P "05.q1", P "05.q2", P "05.q3", P "05.q4"};
  const char *keys[4] = {"a.*", "a.#", "#.z", "*.b.*"};
  const char *want[4] = {"a.b,a.z", "a,a.b,a.b.c,a.z", "a.z,x.y.z", "a.b.c,q.b.r"};
  for (int i = 0; i < 4; i++) {
    declare_excl(1, qs[i]);
    bind_q(1, qs[i], x, keys[i], amqp_empty_table);
  }
  const char *pub[] = {"a.b", "a.b.c", "x.y.z", "a", "q.b.r", "a.z", "b"};
  for (size_t i = 0; i < sizeof pub / sizeof pub[0]; i++) publish_s(1, x, pub[i], pub[i]);
  for (int i = 0; i < 4; i++) {
    char *got = get_all_sorted(1, qs[i]);
    CHECK(strcmp(got, want[i]) == 0, "%s (%s) got [%s] want [%s]", qs[i], keys[i], got, want[i]);
  }
  delete_exchange(1, x);
  close_all();
}

static amqp_table_t str_table(int n, amqp_table_entry_t *e, const char **kv) {
  for (int i = 0; i < n; i++) {
    e[i].key = amqp_cstring_bytes(kv[2 * i]);
    e[i].value.kind = AMQP_FIELD_KIND_UTF8;
    e[i].value.value.bytes = amqp_cstring_bytes(kv[2 * i + 1]);
  }
  amqp_table_t t = {n, e};
  return t;
}

static void s06(void) {
  conn = connect_url(AMQP_DEFAULT_FRAME_SIZE, 0);
  open_channel(1);
  const char *x = P "06.headers";
  declare_exchange(1, x, "headers");
  const char *qa = P "06.all", *qy = P "06.any";
  declare_excl(1, qa);
  declare_excl(1, qy);
  amqp_table_entry_t e[3];
  const char *ball[] = {"x-match", "all", "h1", "v1", "h2", "v2"};
  bind_q(1, qa, x, "", str_table(3, e, ball));
  const char *bany[] = {"x-match", "any", "h1", "v1", "h2", "v2"};
  bind_q(1, qy, x, "", str_table(3, e, bany));
  struct {
    const char *body;
    int n;
    const char *kv[6];
  } msgs[] = {
      {"both", 2, {"h1", "v1", "h2", "v2"}},
      {"both+extra", 3, {"h1", "v1", "h2", "v2", "h3", "v3"}},
      {"h1only", 1, {"h1", "v1"}},
      {"h2only", 2, {"h2", "v2", "h9", "x"}},
      {"wrongval", 2, {"h1", "nope", "h2", "nope"}},
      {"none", 0, {0}},
  };
  for (size_t i = 0; i < sizeof msgs / sizeof msgs[0]; i++) {
    amqp_basic_properties_t props;
    memset(&props, 0, sizeof props);
    if (msgs[i].n) {
      props._flags = AMQP_BASIC_HEADERS_FLAG;
      props.headers = str_table(msgs[i].n, e, msgs[i].kv);
    }
    publish(1, x, "", amqp_cstring_bytes(msgs[i].body), &props, 0);
  }
  char *got = get_all_sorted(1, qa);
  CHECK(strcmp(got, "both,both+extra") == 0, "all got [%s]", got);
  got = get_all_sorted(1, qy);
  CHECK(strcmp(got, "both,both+extra,h1only,h2only") == 0, "any got [%s]", got);
  delete_exchange(1, x);
  close_all();
}

static void s07(void) {
  enum { N = 1000 };
  conn = connect_url(AMQP_DEFAULT_FRAME_SIZE, 0);
  open_channel(1);
  const char *q = P "07.q";
  declare_excl(1, q);
  amqp_confirm_select(conn, 1);
  rpc_ok("confirm.select");
  char b[32];
  for (int i = 0; i < N; i++) {
    snprintf(b, sizeof b, "c%d", i);
    publish_s(1, "", q, b);
  }
  static char state[N + 1]; /* 0 pending, 1 acked, 2 nacked */
  int acked = 0, nacked = 0, frames = 0;
  uint64_t low = 1; /* every tag below `low` is settled */
  double deadline = now_s() + 15;
  while (acked + nacked < N) {
    double left = deadline - now_s();
    CHECK(left > 0, "timeout: %d acked, %d nacked of %d", acked, nacked, N);
    struct timeval tv = tv_of(left);
    amqp_frame_t f;
    int st = amqp_simple_wait_frame_noblock(conn, &f, &tv);
    if (st == AMQP_STATUS_TIMEOUT) continue;
    st_ok(st, "waiting for confirms");
    if (f.frame_type != AMQP_FRAME_METHOD) continue;
    amqp_method_number_t id = f.payload.method.id;
    uint64_t tag;
    int multiple, val;
    if (id == AMQP_BASIC_ACK_METHOD) {
      amqp_basic_ack_t *a = f.payload.method.decoded;
      tag = a->delivery_tag, multiple = a->multiple, val = 1;
    } else if (id == AMQP_BASIC_NACK_METHOD) {
      amqp_basic_nack_t *a = f.payload.method.decoded;
      tag = a->delivery_tag, multiple = a->multiple, val = 2;
    } else if (id == AMQP_CHANNEL_CLOSE_METHOD) {
      amqp_channel_close_t *m = f.payload.method.decoded;
      fail("channel closed %u %s", m->reply_code, bstr(m->reply_text));
    } else {
      fprintf(stderr, "07: ignoring %s\n", amqp_method_name(id));
      continue;
    }
    frames++;
    CHECK(tag >= 1 && tag <= N, "confirm for unknown delivery tag %llu", (unsigned long long)tag);
    uint64_t from = multiple ? low : tag;
    for (uint64_t t = from; t <= tag; t++) {
      if (state[t]) {
        CHECK(multiple, "tag %llu confirmed twice", (unsigned long long)t);
        continue;
      }
      state[t] = (char)val;
      if (val == 1) acked++;
      else nacked++;
    }
    while (low <= N && state[low]) low++;
  }
  fprintf(stderr, "07: %d acked, %d nacked in %d confirm frames\n", acked, nacked, frames);
  CHECK(nacked == 0, "%d nacked", nacked);
  CHECK(acked == N, "%d acked", acked);
  uint32_t n = passive_count(1, q);
  CHECK(n == N, "queue has %u", n);
  delete_queue(1, q);
  close_all();
}

static void s08(void) {
  conn = connect_url(AMQP_DEFAULT_FRAME_SIZE, 0);
  open_channel(1);
  const char *q = P "08.q";
  declare_excl(1, q);
  amqp_tx_select(conn, 1);
  rpc_ok("tx.select");
  publish_s(1, "", q, "t1");
  publish_s(1, "", q, "t2");
  uint32_t n = passive_count(1, q);
  CHECK(n == 0, "uncommitted messages visible: %u", n);
  amqp_tx_commit(conn, 1);
  rpc_ok("tx.commit");
  n = passive_count(1, q);
  CHECK(n == 2, "after commit %u != 2", n);
  publish_s(1, "", q, "t3");
  amqp_tx_rollback(conn, 1);
  rpc_ok("tx.rollback");
  n = passive_count(1, q);
  CHECK(n == 2, "after rollback %u != 2", n);
  delete_queue(1, q);
  close_all();
}

static void s09(void) {
  conn = connect_url(AMQP_DEFAULT_FRAME_SIZE, 0);
  open_channel(1);
  const char *q = P "09.q";
  declare_excl(1, q);
  publish_s(1, "", q, "rej");
  char *tag = consume(1, q, 0);
  amqp_envelope_t env;
  CHECK(next_delivery(&env, 10), "timeout waiting for first delivery");
  CHECK(bytes_eq(env.message.body, "rej") && !env.redelivered, "first delivery redelivered=%d",
        env.redelivered);
  st_ok(amqp_basic_reject(conn, 1, env.delivery_tag, 1), "basic.reject");
  amqp_destroy_envelope(&env);
  CHECK(next_delivery(&env, 10), "timeout waiting for redelivery after reject");
  CHECK(bytes_eq(env.message.body, "rej") && env.redelivered,
        "second delivery redelivered=%d", env.redelivered);
  st_ok(amqp_basic_nack(conn, 1, env.delivery_tag, 0, 1), "basic.nack");
  amqp_destroy_envelope(&env);
  CHECK(next_delivery(&env, 10), "timeout waiting for redelivery after nack");
  CHECK(bytes_eq(env.message.body, "rej") && env.redelivered, "third delivery redelivered=%d",
        env.redelivered);
  st_ok(amqp_basic_ack(conn, 1, env.delivery_tag, 0), "basic.ack");
  amqp_destroy_envelope(&env);
  cancel(1, tag);
  CHECK(!next_delivery(&env, 0.2), "extra delivery after ack");
  uint32_t n = passive_count(1, q);
  CHECK(n == 0, "queue has %u after ack", n);
  delete_queue(1, q);
  close_all();
}

static void s10(void) {
  conn = connect_url(AMQP_DEFAULT_FRAME_SIZE, 0);
  open_channel(1);
  const char *x = P "10.direct";
  declare_exchange(1, x, "direct");
  publish(1, x, "nobody.home", amqp_cstring_bytes("unroutable"), NULL, 1);
  double deadline = now_s() + 10;
  for (;;) {
    double left = deadline - now_s();
    CHECK(left > 0, "timeout waiting for basic.return");
    struct timeval tv = tv_of(left);
    amqp_frame_t f;
    int st = amqp_simple_wait_frame_noblock(conn, &f, &tv);
    if (st == AMQP_STATUS_TIMEOUT) continue;
    st_ok(st, "waiting for basic.return");
    if (f.frame_type != AMQP_FRAME_METHOD) continue;
    if (f.payload.method.id != AMQP_BASIC_RETURN_METHOD) {
      fprintf(stderr, "10: ignoring %s\n", amqp_method_name(f.payload.method.id));
      continue;
    }
    amqp_basic_return_t *r = f.payload.method.decoded;
    uint16_t code = r->reply_code;
    char *text = strndup(r->reply_text.bytes, r->reply_text.len);
    char *ex = strndup(r->exchange.bytes, r->exchange.len);
    char *rk = strndup(r->routing_key.bytes, r->routing_key.len);
    amqp_message_t m;
    rpc_fail(amqp_read_message(conn, 1, &m, 0), "reading returned message");
    fprintf(stderr, "10: basic.return %u '%s' exchange='%s' key='%s' body='%s'\n", code, text, ex,
            rk, bstr(m.body));
    CHECK(code == 312, "reply code %u", code);
    CHECK(strcmp(text, "NO_ROUTE") == 0, "reply text '%s'", text);
    CHECK(strcmp(ex, x) == 0, "exchange '%s'", ex);
    CHECK(strcmp(rk, "nobody.home") == 0, "routing key '%s'", rk);
    CHECK(bytes_eq(m.body, "unroutable"), "body '%s'", bstr(m.body));
    amqp_destroy_message(&m);
    break;
  }
  delete_exchange(1, x);
  close_all();
}

static void s11(void) {
  conn = connect_url(AMQP_DEFAULT_FRAME_SIZE, 0);
  open_channel(1);
  const char *missing = P "11.does-not-exist";
  amqp_queue_declare_ok_t *ok =
      amqp_queue_declare(conn, 1, amqp_cstring_bytes(missing), 1, 0, 0, 0, amqp_empty_table);
  amqp_rpc_reply_t r = amqp_get_rpc_reply(conn);
  CHECK(ok == NULL && r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION,
        "passive declare of missing queue did not fail (reply type %d)", r.reply_type);
  CHECK(r.reply.id == AMQP_CHANNEL_CLOSE_METHOD, "expected channel.close, got %s",
        amqp_method_name(r.reply.id));
  amqp_channel_close_t *cc = r.reply.decoded;
  fprintf(stderr, "11: channel.close %u '%s' class=%u method=%u\n", cc->reply_code,
          bstr(cc->reply_text), cc->class_id, cc->method_id);
  CHECK(cc->reply_code == 404, "reply code %u", cc->reply_code);
  const char *pre = "NOT_FOUND - no queue '";
  CHECK(cc->reply_text.len >= strlen(pre) && memcmp(cc->reply_text.bytes, pre, strlen(pre)) == 0,
        "reply text '%s'", bstr(cc->reply_text));
  CHECK(cc->class_id == 50 && cc->method_id == 10, "close names class %u method %u", cc->class_id,
        cc->method_id);
  amqp_channel_close_ok_t cok = {0};
  st_ok(amqp_send_method(conn, 1, AMQP_CHANNEL_CLOSE_OK_METHOD, &cok), "channel.close-ok");
  open_channel(2);
  const char *q = P "11.q";
  declare_excl(2, q);
  publish_s(2, "", q, "after");
  amqp_message_t m;
  CHECK(get_msg(2, q, 1, &m, NULL), "get on new channel empty");
  CHECK(bytes_eq(m.body, "after"), "body %s", bstr(m.body));
  amqp_destroy_message(&m);
  delete_queue(2, q);
  close_all();
}

static void s12(void) {
  const size_t N = 10u * 1024 * 1024;
  conn = connect_url(AMQP_DEFAULT_FRAME_SIZE, 0);
  open_channel(1);
  const char *q = P "12.q";
  declare_excl(1, q);
  unsigned char *body = malloc(N);
  CHECK(body != NULL, "malloc");
  uint64_t s = 0x9E3779B97F4A7C15ull ^ (uint64_t)time(NULL);
  for (size_t i = 0; i < N; i++) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17; /* xorshift64 */
    body[i] = (unsigned char)(s >> 24);
  }
  amqp_bytes_t b = {N, body};
  publish(1, "", q, b, NULL, 0);
  amqp_message_t m;
  CHECK(get_msg(1, q, 1, &m, NULL), "get empty");
  CHECK(m.body.len == N, "length %zu", m.body.len);
  CHECK(bytes_eqb(m.body, b), "body differs");
  amqp_destroy_message(&m);
  free(body);
  delete_queue(1, q);
  close_all();
}

static void s13(void) {
  conn = connect_url(AMQP_DEFAULT_FRAME_SIZE, 0);
  open_channel(1); /* requester */
  open_channel(2); /* responder */
  const char *sq = P "13.rpc";
  declare_excl(2, sq);
  char *srv_tag = consume(2, sq, 0);
  char *req_tag = consume(1, "amq.rabbitmq.reply-to", 1);
  char cid[64];
  snprintf(cid, sizeof cid, "corr-%ld-%d", (long)time(NULL), (int)getpid());
  amqp_basic_properties_t p;
  memset(&p, 0, sizeof p);
  p._flags = AMQP_BASIC_REPLY_TO_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG;
  p.reply_to = amqp_cstring_bytes("amq.rabbitmq.reply-to");
  p.correlation_id = amqp_cstring_bytes(cid);
  publish(1, "", sq, amqp_cstring_bytes("ping"), &p, 0);
  int served = 0, answered = 0;
  double deadline = now_s() + 10;
  while (!answered) {
    amqp_envelope_t env;
    CHECK(next_delivery(&env, deadline - now_s()), "timeout (served=%d)", served);
    if (env.channel == 2) {
      CHECK(bytes_eq(env.consumer_tag, srv_tag), "responder consumer tag");
      amqp_basic_properties_t *rp = &env.message.properties;
      CHECK(rp->_flags & AMQP_BASIC_REPLY_TO_FLAG, "request without reply_to");
      fprintf(stderr, "13: request reply_to=%s\n", bstr(rp->reply_to));
      CHECK(rp->reply_to.len > strlen("amq.rabbitmq.reply-to"),
            "reply_to not rewritten by broker: %s", bstr(rp->reply_to));
      amqp_basic_properties_t out;
      memset(&out, 0, sizeof out);
      out._flags = AMQP_BASIC_CORRELATION_ID_FLAG;
      out.correlation_id = rp->correlation_id;
      char body[64];
      snprintf(body, sizeof body, "reply:%s", bstr(env.message.body));
      publish(2, "", bstr(rp->reply_to), amqp_cstring_bytes(body), &out, 0);
      st_ok(amqp_basic_ack(conn, 2, env.delivery_tag, 0), "ack request");
      served++;
    } else if (env.channel == 1) {
      CHECK(served == 1, "reply before request was served");
      CHECK(bytes_eq(env.consumer_tag, req_tag), "requester consumer tag");
      CHECK(bytes_eq(env.message.body, "reply:ping"), "reply body %s", bstr(env.message.body));
      amqp_basic_properties_t *rp = &env.message.properties;
      CHECK((rp->_flags & AMQP_BASIC_CORRELATION_ID_FLAG) && bytes_eq(rp->correlation_id, cid),
            "correlation_id mismatch");
      answered = 1;
    } else {
      fail("delivery on unexpected channel %d", env.channel);
    }
    amqp_destroy_envelope(&env);
  }
  delete_queue(2, sq);
  close_all();
}

static void s14(void) {
  conn = connect_url(AMQP_DEFAULT_FRAME_SIZE, 0);
  open_channel(1);
  const char *q = P "14.q";
  declare_excl(1, q);
  char b[32];
  for (int i = 0; i < 20; i++) {
    snprintf(b, sizeof b, "p%d", i);
    publish_s(1, "", q, b);
  }
  amqp_basic_qos(conn, 1, 0, 5, 0);
  rpc_ok("basic.qos");
  char *tag = consume(1, q, 0);
  uint64_t last = 0;
  int got = 0;
  for (int round = 0; round < 2; round++) {
    for (int i = 0; i < 5; i++) {
      amqp_envelope_t env;
      CHECK(next_delivery(&env, 10), "timeout waiting for delivery %d", got);
      snprintf(b, sizeof b, "p%d", got);
      CHECK(bytes_eq(env.message.body, b), "delivery %d body %s", got, bstr(env.message.body));
      last = env.delivery_tag;
      got++;
      amqp_destroy_envelope(&env);
    }
    amqp_envelope_t env;
    if (next_delivery(&env, 0.5)) fail("6th unacked delivery with prefetch 5 (after %d)", got);
    st_ok(amqp_basic_ack(conn, 1, last, 1), "basic.ack multiple");
  }
  cancel(1, tag);
  delete_queue(1, q);
  close_all();
}

/* ------------------------------------------------ scenario 15: properties */

static const char *kind_name(uint8_t k) {
  static char b[8];
  snprintf(b, sizeof b, "'%c'", k);
  return b;
}

static int value_eq(const amqp_field_value_t *a, const amqp_field_value_t *b, const char *path,
                    char *why, size_t wn);

static int table_eq(const amqp_table_t *a, const amqp_table_t *b, const char *path, char *why,
                    size_t wn) {
  if (a->num_entries != b->num_entries) {
    snprintf(why, wn, "%s: %d entries, expected %d", path, b->num_entries, a->num_entries);
    return 0;
  }
  for (int i = 0; i < a->num_entries; i++) {
    const amqp_table_entry_t *ea = &a->entries[i], *eb = NULL;
    for (int j = 0; j < b->num_entries; j++)
      if (bytes_eqb(ea->key, b->entries[j].key)) eb = &b->entries[j];
    char sub[256];
    snprintf(sub, sizeof sub, "%s.%s", path, bstr(ea->key));
    if (!eb) {
      snprintf(why, wn, "%s missing", sub);
      return 0;
    }
    if (!value_eq(&ea->value, &eb->value, sub, why, wn)) return 0;
  }
  return 1;
}

static int value_eq(const amqp_field_value_t *a, const amqp_field_value_t *b, const char *path,
                    char *why, size_t wn) {
  if (a->kind != b->kind) {
    snprintf(why, wn, "%s: type %s, expected %s", path, kind_name(b->kind), kind_name(a->kind));
    return 0;
  }
  int ok = 1;
  switch (a->kind) {
    case AMQP_FIELD_KIND_BOOLEAN: ok = (!!a->value.boolean) == (!!b->value.boolean); break;
    case AMQP_FIELD_KIND_I8: ok = a->value.i8 == b->value.i8; break;
    case AMQP_FIELD_KIND_U8: ok = a->value.u8 == b->value.u8; break;
    case AMQP_FIELD_KIND_I16: ok = a->value.i16 == b->value.i16; break;
    case AMQP_FIELD_KIND_U16: ok = a->value.u16 == b->value.u16; break;
    case AMQP_FIELD_KIND_I32: ok = a->value.i32 == b->value.i32; break;
    case AMQP_FIELD_KIND_U32: ok = a->value.u32 == b->value.u32; break;
    case AMQP_FIELD_KIND_I64: ok = a->value.i64 == b->value.i64; break;
    case AMQP_FIELD_KIND_U64:
    case AMQP_FIELD_KIND_TIMESTAMP: ok = a->value.u64 == b->value.u64; break;
    case AMQP_FIELD_KIND_F32: ok = memcmp(&a->value.f32, &b->value.f32, 4) == 0; break;
    case AMQP_FIELD_KIND_F64: ok = memcmp(&a->value.f64, &b->value.f64, 8) == 0; break;
    case AMQP_FIELD_KIND_DECIMAL:
      ok = a->value.decimal.decimals == b->value.decimal.decimals &&
           a->value.decimal.value == b->value.decimal.value;
      break;
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES: ok = bytes_eqb(a->value.bytes, b->value.bytes); break;
    case AMQP_FIELD_KIND_VOID: ok = 1; break;
    case AMQP_FIELD_KIND_TABLE: return table_eq(&a->value.table, &b->value.table, path, why, wn);
    case AMQP_FIELD_KIND_ARRAY:
      if (a->value.array.num_entries != b->value.array.num_entries) {
        snprintf(why, wn, "%s: array of %d, expected %d", path, b->value.array.num_entries,
                 a->value.array.num_entries);
        return 0;
      }
      for (int i = 0; i < a->value.array.num_entries; i++) {
        char sub[256];
        snprintf(sub, sizeof sub, "%s[%d]", path, i);
        if (!value_eq(&a->value.array.entries[i], &b->value.array.entries[i], sub, why, wn))
          return 0;
      }
      return 1;
    default:
      snprintf(why, wn, "%s: unknown kind %s", path, kind_name(a->kind));
      return 0;
  }
  if (!ok) snprintf(why, wn, "%s: value differs (type %s)", path, kind_name(a->kind));
  return ok;
}

#define FV(k, field, v) \
  ((amqp_field_value_t){.kind = (k), .value.field = (v)})

static void s15(void) {
  conn = connect_url(AMQP_DEFAULT_FRAME_SIZE, 0);
  open_channel(1);
  const char *q = P "15.q";
  declare_excl(1, q);

  amqp_table_entry_t nested_e[2] = {
      {amqp_cstring_bytes("inner"), FV(AMQP_FIELD_KIND_UTF8, bytes, amqp_cstring_bytes("yes"))},
      {amqp_cstring_bytes("n"), FV(AMQP_FIELD_KIND_I32, i32, 7)},
  };
  amqp_table_entry_t in_arr_e[1] = {
      {amqp_cstring_bytes("k"), FV(AMQP_FIELD_KIND_UTF8, bytes, amqp_cstring_bytes("v"))},
  };
  amqp_field_value_t arr_v[6] = {
      FV(AMQP_FIELD_KIND_UTF8, bytes, amqp_cstring_bytes("s")),
      FV(AMQP_FIELD_KIND_I32, i32, 42),
      FV(AMQP_FIELD_KIND_BOOLEAN, boolean, 1),
      FV(AMQP_FIELD_KIND_TABLE, table, ((amqp_table_t){1, in_arr_e})),
      {.kind = AMQP_FIELD_KIND_VOID},
      FV(AMQP_FIELD_KIND_F64, f64, -0.5),
  };
  static const char bin[] = {0, 1, (char)0xfe, (char)0xff, ' ', 'b', 'i', 'n'};
  amqp_bytes_t binb = {sizeof bin, (void *)bin};
  amqp_decimal_t dec = {2, 12345};
  amqp_table_entry_t he[] = {
      {amqp_cstring_bytes("str"),
       FV(AMQP_FIELD_KIND_UTF8, bytes, amqp_cstring_bytes("a string \xc3\xbcn\xc3\xaf" "code"))},
      {amqp_cstring_bytes("i8"), FV(AMQP_FIELD_KIND_I8, i8, -100)},
      {amqp_cstring_bytes("u8"), FV(AMQP_FIELD_KIND_U8, u8, 200)},
      {amqp_cstring_bytes("i16"), FV(AMQP_FIELD_KIND_I16, i16, -30000)},
      {amqp_cstring_bytes("u16"), FV(AMQP_FIELD_KIND_U16, u16, 60000)},
      {amqp_cstring_bytes("i32"), FV(AMQP_FIELD_KIND_I32, i32, -2000000000)},
      {amqp_cstring_bytes("u32"), FV(AMQP_FIELD_KIND_U32, u32, 4000000000u)},
      {amqp_cstring_bytes("i64"), FV(AMQP_FIELD_KIND_I64, i64, -9000000000000000000ll)},
      {amqp_cstring_bytes("u64"), FV(AMQP_FIELD_KIND_U64, u64, 18000000000000000000ull)},
      {amqp_cstring_bytes("bool_t"), FV(AMQP_FIELD_KIND_BOOLEAN, boolean, 1)},
      {amqp_cstring_bytes("bool_f"), FV(AMQP_FIELD_KIND_BOOLEAN, boolean, 0)},
      {amqp_cstring_bytes("float"), FV(AMQP_FIELD_KIND_F32, f32, 1.5f)},
      {amqp_cstring_bytes("double"), FV(AMQP_FIELD_KIND_F64, f64, 3.141592653589793)},
      {amqp_cstring_bytes("decimal"), FV(AMQP_FIELD_KIND_DECIMAL, decimal, dec)},
      {amqp_cstring_bytes("ts"), FV(AMQP_FIELD_KIND_TIMESTAMP, u64, 1700000000ull)},
      {amqp_cstring_bytes("table"), FV(AMQP_FIELD_KIND_TABLE, table, ((amqp_table_t){2, nested_e}))},
      {amqp_cstring_bytes("array"),
       FV(AMQP_FIELD_KIND_ARRAY, array, ((amqp_array_t){6, arr_v}))},
      {amqp_cstring_bytes("void"), {.kind = AMQP_FIELD_KIND_VOID}},
      {amqp_cstring_bytes("bytes"), FV(AMQP_FIELD_KIND_BYTES, bytes, binb)},
  };
  amqp_table_t headers = {(int)(sizeof he / sizeof he[0]), he};

  amqp_basic_properties_t p;
  memset(&p, 0, sizeof p);
  p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_CONTENT_ENCODING_FLAG |
             AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_PRIORITY_FLAG |
             AMQP_BASIC_CORRELATION_ID_FLAG | AMQP_BASIC_REPLY_TO_FLAG |
             AMQP_BASIC_EXPIRATION_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TIMESTAMP_FLAG |
             AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_USER_ID_FLAG | AMQP_BASIC_APP_ID_FLAG |
             AMQP_BASIC_CLUSTER_ID_FLAG;
  p.content_type = amqp_cstring_bytes("application/x-interop");
  p.content_encoding = amqp_cstring_bytes("identity");
  p.headers = headers;
  p.delivery_mode = 2;
  p.priority = 7;
  p.correlation_id = amqp_cstring_bytes("corr-15");
  p.reply_to = amqp_cstring_bytes("reply.here");
  p.expiration = amqp_cstring_bytes("600000");
  p.message_id = amqp_cstring_bytes("msg-15");
  p.timestamp = 1700000123;
  p.type = amqp_cstring_bytes("interop.type");
  p.user_id = amqp_cstring_bytes("guest");
  p.app_id = amqp_cstring_bytes("interop-c");
  p.cluster_id = amqp_cstring_bytes("cluster-15");
  publish(1, "", q, amqp_cstring_bytes("props"), &p, 0);

  amqp_message_t m;
  CHECK(get_msg(1, q, 1, &m, NULL), "get empty");
  CHECK(bytes_eq(m.body, "props"), "body %s", bstr(m.body));
  amqp_basic_properties_t *g = &m.properties;
  fprintf(stderr, "15: flags sent 0x%04x received 0x%04x\n", p._flags, g->_flags);
  CHECK(g->_flags == p._flags, "property flags 0x%04x != 0x%04x", g->_flags, p._flags);
#define SAMEB(f) CHECK(bytes_eqb(g->f, p.f), #f " '%s' != '%s'", bstr(g->f), bstr(p.f))
  SAMEB(content_type);
  SAMEB(content_encoding);
  CHECK(g->delivery_mode == 2, "delivery_mode %u", g->delivery_mode);
  CHECK(g->priority == 7, "priority %u", g->priority);
  SAMEB(correlation_id);
  SAMEB(reply_to);
  SAMEB(expiration);
  SAMEB(message_id);
  CHECK(g->timestamp == p.timestamp, "timestamp %llu", (unsigned long long)g->timestamp);
  SAMEB(type);
  SAMEB(user_id);
  SAMEB(app_id);
  SAMEB(cluster_id);
  for (int i = 0; i < g->headers.num_entries; i++)
    fprintf(stderr, "15: header %s type %s\n", bstr(g->headers.entries[i].key),
            kind_name(g->headers.entries[i].value.kind));
  char why[400];
  CHECK(table_eq(&headers, &g->headers, "headers", why, sizeof why), "%s", why);
  amqp_destroy_message(&m);
  delete_queue(1, q);
  close_all();
}

/* ------------------------------------------------------------------- main */

/* 17: a non-guest user on its own vhost (interop/definitions.json creates them;
 * INTEROP_USER, INTEROP_PASS and INTEROP_VHOST name others, e.g. on a shared reference),
 * then the same user refused on "/" with 530 at connection.open. */
static const char *env_or(const char *key, const char *def) {
  const char *v = getenv(key);
  return v && *v ? v : def;
}

/* Logs in as the scenario user on `vhost` (host and port from the URL); the login's reply
 * is returned, *out holds the connection. */
static amqp_rpc_reply_t login_as(const char *vhost, amqp_connection_state_t *out) {
  struct amqp_connection_info ci;
  char *u;
  amqp_connection_state_t c = open_socket(&ci, &u);
  amqp_rpc_reply_t r = amqp_login(c, vhost, 0, AMQP_DEFAULT_FRAME_SIZE, 0, AMQP_SASL_METHOD_PLAIN,
                                  env_or("INTEROP_USER", "interop"),
                                  env_or("INTEROP_PASS", "interop-pw"));
  free(u);
  *out = c;
  return r;
}

static void s17(void) {
  rpc_fail(login_as(env_or("INTEROP_VHOST", "interop-vh"), &conn), "login on own vhost");
  open_channel(1);
  const char *q = P "17";
  declare_excl(1, q);
  publish_s(1, "", q, "own vhost");
  consume(1, q, 0);
  amqp_envelope_t env;
  CHECK(next_delivery(&env, 10), "no delivery");
  CHECK(bytes_eq(env.message.body, "own vhost"), "got %s", bstr(env.message.body));
  st_ok(amqp_basic_ack(conn, 1, env.delivery_tag, 0), "basic.ack");
  amqp_destroy_envelope(&env);
  close_all();
  /* librabbitmq reports the server's connection.close to connection.open as a server
   * exception carrying the decoded close. */
  amqp_connection_state_t refused;
  amqp_rpc_reply_t r = login_as("/", &refused);
  CHECK(r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && r.reply.id == AMQP_CONNECTION_CLOSE_METHOD,
        "connection.open on / gave reply type %d", (int)r.reply_type);
  amqp_connection_close_t *m = r.reply.decoded;
  char expected[256];
  snprintf(expected, sizeof expected, "NOT_ALLOWED - access to vhost '/' refused for user '%s'",
           env_or("INTEROP_USER", "interop"));
  CHECK(m->reply_code == 530 && bytes_eq(m->reply_text, expected), "refused with %u %s",
        m->reply_code, bstr(m->reply_text));
  amqp_destroy_connection(refused);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s URL NN\n", argv[0]);
    return 2;
  }
  url_arg = argv[1];
  int n = atoi(argv[2]);
  snprintf(scen, sizeof scen, "%02d", n);
  setvbuf(stdout, NULL, _IOLBF, 0);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGALRM, on_alarm);
  alarm(19);
  static void (*const fns[])(void) = {NULL, s01, s02, s03, s04, s05, s06, s07, s08,
                                      s09,  s10, s11, s12, s13, s14, s15, NULL, s17};
  if (n < 1 || n > 17 || fns[n] == NULL) {
    printf("%s n/a no such scenario\n", scen);
    return 0;
  }
  fns[n]();
  printf("%s pass\n", scen);
  return 0;
}
