// Placeholder until its page lands (issue 13): the route exists so the nav is whole.
import { h } from '../dom.js';

export const routes = [{
  path: 'connections', nav: 'connections', navLabel: 'Connections', title: 'Connections',
  render(view) { view.el.append(h('h1', null, 'Connections')); },
}];
