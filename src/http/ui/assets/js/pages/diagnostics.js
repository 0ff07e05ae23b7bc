// Placeholder until its page lands (issue 13): the route exists so the nav is whole.
import { h } from '../dom.js';

export const routes = [{
  path: 'diagnostics', nav: 'diagnostics', navLabel: 'Diagnostics', title: 'Diagnostics',
  render(view) { view.el.append(h('h1', null, 'Diagnostics')); },
}];

/** The header's count of diagnostics, linking to this page. */
export function diagnosticsBadge() {
  return h('a', { href: '#/diagnostics', class: 'badge zero', dataset: { test: 'diagnostics-badge' } }, '0');
}
