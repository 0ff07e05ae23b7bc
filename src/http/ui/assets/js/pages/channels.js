// Placeholder until its page lands (issue 13): the route exists so the nav is whole.
import { h } from '../dom.js';

export const routes = [{
  path: 'channels', nav: 'channels', navLabel: 'Channels', title: 'Channels',
  render(view) { view.el.append(h('h1', null, 'Channels')); },
}];
