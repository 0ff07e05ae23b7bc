// Placeholder until its page lands (issue 13): the route exists so the nav is whole.
import { h } from '../dom.js';

export const routes = [{
  path: 'admin/users', nav: 'admin', navLabel: 'Admin', title: 'Admin',
  render(view) { view.el.append(h('h1', null, 'Admin')); },
}];
