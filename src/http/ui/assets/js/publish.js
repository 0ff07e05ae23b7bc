// The "Publish message" panel of the exchange page and the queue page (a queue publishes
// through the default exchange with its name as routing key, as RabbitMQ's UI does):
// routing key, delivery mode, headers, properties and payload, POSTed to
// /api/exchanges/{vhost}/{exchange}/publish; the answer's "routed" is shown, since a
// message no binding routes is the first thing a developer wants to know about.

import * as api from './api.js';
import { h, fill } from './dom.js';
import { form, field, input, argumentsEditor } from './form.js';

/** AMQP properties other than delivery mode and headers, as the API names them. */
const PROPERTY_HELPERS = [
  { key: 'content_type', label: 'Content type', value: 'application/json' },
  { key: 'correlation_id', label: 'Correlation id' },
  { key: 'message_id', label: 'Message id' },
  { key: 'reply_to', label: 'Reply to' },
  { key: 'expiration', label: 'Expiration (ms)', value: '60000' },
  { key: 'priority', label: 'Priority', type: 'number', value: '5' },
  { key: 'type', label: 'Type' },
  { key: 'app_id', label: 'App id' },
  { key: 'user_id', label: 'User id' },
  { key: 'timestamp', label: 'Timestamp (s)', type: 'number' },
  { key: 'content_encoding', label: 'Content encoding' },
];

/**
 * publishPanel({ vhost, exchange, routingKey, fixedKey }) -> section. `exchange` ''
 * is the default exchange; `fixedKey` hides the routing key field (a queue page).
 */
export function publishPanel({ vhost, exchange, routingKey = '', fixedKey = false }) {
  const result = h('p', { class: 'muted', role: 'status', dataset: { test: 'publish-result' } });
  const key = input('routing_key', { value: routingKey, test: 'publish-routing-key' });
  const fields = [
    h('div', { class: 'row' },
      fixedKey ? h('input', { type: 'hidden', name: 'routing_key', value: routingKey }) : field('Routing key', key),
      field('Delivery mode', input('delivery_mode', { options: [['1', '1 - Non-persistent'], ['2', '2 - Persistent']], test: 'publish-delivery-mode' })),
      field('Payload encoding', input('payload_encoding', { options: [['string', 'String (UTF-8)'], ['base64', 'Base64']], test: 'publish-encoding' }))),
    field('Headers', argumentsEditor('headers')),
    field('Properties', argumentsEditor('properties', PROPERTY_HELPERS)),
    field('Payload', input('payload', { type: 'textarea', rows: 6, test: 'publish-payload' })),
  ];
  const target = exchange === '' ? 'amq.default' : exchange;
  const el = form({
    test: 'publish',
    submit: 'Publish message',
    reset: false,
    fields,
    async onSubmit(v) {
      const properties = { ...v.properties, delivery_mode: Number(v.delivery_mode) };
      if (Object.keys(v.headers).length) properties.headers = v.headers;
      const answer = await api.post(api.path`/exchanges/${vhost}/${target}/publish`, {
        routing_key: v.routing_key, payload: v.payload, payload_encoding: v.payload_encoding, properties,
      });
      const routed = !!answer?.routed;
      result.className = routed ? 'ok' : 'warn';
      result.dataset.routed = String(routed);
      fill(result, routed
        ? `Published: routed to at least one queue (routing key '${v.routing_key}').`
        : `Published, but not routed: no binding matched routing key '${v.routing_key}'. The message was dropped.`);
      return routed ? 'Message published.' : 'Message published but not routed.';
    },
  });
  return h('section', { class: 'panel', dataset: { test: 'publish-panel' } },
    h('h2', null, 'Publish message'),
    fixedKey && h('p', { class: 'muted' }, `Through the default exchange with routing key '${routingKey}': it goes to this queue only.`),
    el, result);
}
