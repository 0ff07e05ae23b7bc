"""Helpers the exchange and queue browser tests share: typing into and choosing in a
form's controls by their data-test hooks, and clicking below the sticky header."""

from selenium.webdriver.support.ui import Select


def fill(scope, test, text):
    """Types `text` into the control with data-test=`test` inside `scope`."""
    el = scope.find_element("css selector", f'[data-test="{test}"]')
    el.clear()
    el.send_keys(text)
    return el


def choose(scope, test, value):
    Select(scope.find_element("css selector", f'[data-test="{test}"]')).select_by_value(value)


def click(driver, el):
    """Clicks el once it is scrolled to the middle of the window (the header is sticky
    and would take a click aimed at the top row)."""
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", el)
    el.click()


def press(driver, scope, test):
    click(driver, scope.find_element("css selector", f'[data-test="{test}"]'))


def helper(driver, form, key, value):
    """Clicks the arguments editor's helper button for `key` and types its value."""
    click(driver, form.find_element("css selector", f'button[title="{key}"]'))
    row = form.find_elements("css selector", ".args .arg")[-1]
    assert row.find_element("css selector", '[data-test="arg-key"]').get_attribute("value") == key
    fill(row, "arg-value", value)
