// Placeholder until the search lands (issue 13): Enter goes to the results page.
import { h } from './dom.js';

export function mountSearch(input) {
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') location.hash = `#/search?q=${encodeURIComponent(input.value)}`;
  });
}

export const routes = [{
  path: 'search', nav: '', title: 'Search',
  render(view) { view.el.append(h('h1', null, 'Search')); },
}];
