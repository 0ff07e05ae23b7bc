"""The header's search box and the search results page (warren's /api/search).

Type part of a queue's name in the box, pick the result from the dropdown (with the
mouse, and with the keyboard), land on the queue's page; Enter without a selection
opens the full results page; Escape closes the dropdown. Objects made here are named
"ui-search-*" and deleted afterwards.
"""

import pytest

from conftest import quote, wait_until

BOX = '[data-test="search"]'
RESULTS = '[data-test="search-results"]'
RESULT = '[data-test="search-result"]'


@pytest.fixture
def queues(warren):
    """Queues in / and in a second vhost, deleted after the test."""
    made = []

    def make(vhost, name):
        status, body = warren.api("PUT", f"/api/queues/{quote(vhost)}/{quote(name)}", {})
        assert status in (201, 204), (status, body)
        made.append((vhost, name))
    yield make
    for vhost, name in made:
        warren.api("DELETE", f"/api/queues/{quote(vhost)}/{quote(name)}")


@pytest.fixture
def vhost(warren):
    made = []

    def make(name):
        assert warren.api("PUT", f"/api/vhosts/{quote(name)}", {})[0] in (201, 204)
        status, _ = warren.api("PUT", f"/api/permissions/{quote(name)}/guest",
                               {"configure": ".*", "write": ".*", "read": ".*"})
        assert status in (201, 204)
        made.append(name)
        return name
    yield make
    for name in made:
        warren.api("DELETE", f"/api/vhosts/{quote(name)}")


def type_in_box(browser, text):
    box = browser.find_element("css selector", BOX)
    box.clear()
    box.send_keys(text)
    return box


def results(browser):
    """(kind, name, vhost) of each result in the dropdown, once it is shown."""
    return [(r.get_attribute("data-kind"), r.get_attribute("data-name"),
             r.get_attribute("data-vhost"))
            for r in browser.find_elements("css selector", RESULT) if r.is_displayed()]


def test_pick_a_queue_from_the_search_box_and_land_on_its_page(
        warren, browser, page, wait_for, shot, queues, vhost):
    other = vhost("ui-search-vh")
    queues("/", "ui-search-orders.created")
    queues(other, "ui-search-orders.archived")
    queues("/", "ui-search-unrelated")
    page("queues")
    type_in_box(browser, "UI-SEARCH-ORDERS")
    wait_for(RESULT)
    wait_until(lambda: len(results(browser)) == 2, what="two queues in the dropdown")
    assert sorted(results(browser)) == [
        ("queues", "ui-search-orders.archived", other),
        ("queues", "ui-search-orders.created", "/"),
    ]
    shot("search-dropdown")
    wait_for(RESULT + '[data-name="ui-search-orders.created"]').click()
    wait_until(lambda: browser.execute_script("return location.hash")
               == "#/queues/%2F/ui-search-orders.created", what="the queue's page")
    assert not browser.find_element("css selector", RESULTS).is_displayed()
    wait_for("#main h1", "ui-search-orders.created")


def test_keyboard_arrows_enter_and_escape(warren, browser, page, wait_for, queues, vhost):
    from selenium.webdriver.common.keys import Keys
    other = vhost("ui-search-kb")
    queues(other, "ui-search-kb-queue")
    page("")
    box = type_in_box(browser, "ui-search-kb")
    wait_for(RESULT + '[data-name="ui-search-kb-queue"]')
    box.send_keys(Keys.ESCAPE)
    wait_until(lambda: not browser.find_element("css selector", RESULTS).is_displayed(),
               what="Escape to close the dropdown")
    box.send_keys(Keys.ARROW_DOWN)
    first = wait_for(RESULT)
    assert first.get_attribute("aria-selected") == "false", "reopened, nothing selected"
    box.send_keys(Keys.ARROW_DOWN)
    wait_until(lambda: first.get_attribute("aria-selected") == "true",
               what="the first result selected")
    assert box.get_attribute("aria-activedescendant") == first.get_attribute("id")
    box.send_keys(Keys.ENTER)
    wait_until(lambda: browser.execute_script("return location.hash")
               == f"#/queues/{quote(other)}/ui-search-kb-queue", what="the queue's page")


def test_enter_without_a_selection_opens_the_results_page(
        warren, browser, page, wait_for, shot, queues):
    from selenium.webdriver.common.keys import Keys
    queues("/", "ui-search-page-a")
    queues("/", "ui-search-page-b")
    page("")
    box = type_in_box(browser, "ui-search-page")
    box.send_keys(Keys.ENTER)
    wait_until(lambda: browser.execute_script("return location.hash")
               == "#/search?q=ui-search-page", what="the results page")
    table = wait_for('[data-test="search-queues"] tr[data-name="ui-search-page-b"]')
    names = [r.get_attribute("data-name") for r in browser.find_elements(
        "css selector", '[data-test="search-queues"] tbody tr')]
    assert names == ["ui-search-page-a", "ui-search-page-b"]
    assert table.find_element("css selector", "a").get_attribute("href").endswith(
        "#/queues/%2F/ui-search-page-b")
    shot("search")
