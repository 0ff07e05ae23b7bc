"""The login form, logout, a deep link opened before login, and dark mode.

Each test uses a browser of its own (new_browser), so the session's logged-in browser
is left alone. Users made here are named "ui-login-*" and deleted afterwards.
"""

import pytest

from conftest import READY_JS, save_shot, ui_login, wait_for_in, wait_ready, wait_until

LOGIN_FORM = '[data-test="login-form"]'
LOGIN_ERROR = '[data-test="login-error"]'
LOGOUT = '[data-test="logout"]'


@pytest.fixture
def user(warren):
    """A user with the given tags (and permissions on /), deleted after the test."""
    made = []

    def make(name, password, tags):
        status, body = warren.api("PUT", f"/api/users/{name}", {"password": password, "tags": tags})
        assert status in (201, 204), (status, body)
        status, body = warren.api("PUT", f"/api/permissions/%2F/{name}",
                                  {"configure": ".*", "write": ".*", "read": ".*"})
        assert status in (201, 204), (status, body)
        made.append(name)
        return name
    yield make
    for name in made:
        warren.api("DELETE", f"/api/users/{name}")


def logged_in(driver):
    return driver.execute_script(READY_JS) and not driver.find_elements(
        "css selector", LOGIN_FORM + ":not([hidden])")


def test_bad_password_is_refused_with_login_failed(warren, new_browser):
    d = new_browser()
    d.get(warren.http_url + "/")
    ui_login(d, "guest", "not-the-password")
    error = wait_for_in(d, LOGIN_ERROR, "Login failed")
    assert "Login failed" in error.text
    save_shot(d, "login-failed")
    # Logged out, the header (navigation, search, "Log out") is not shown.
    assert not d.find_element("css selector", "header").is_displayed()
    # Still on the form, nothing stored: a reload asks again.
    assert wait_for_in(d, LOGIN_FORM).is_displayed()
    d.refresh()
    assert wait_for_in(d, LOGIN_FORM).is_displayed()
    # The right password then works.
    ui_login(d, "guest", "guest")
    wait_ready(d)
    assert logged_in(d)


def test_user_without_management_tag_is_refused(warren, new_browser, user):
    name = user("ui-login-notag", "ui-login-pw", "")
    # The API refuses it as RabbitMQ does.
    status, body = warren.api("GET", "/api/whoami", user=(name, "ui-login-pw"))
    assert (status, body) == (401, {"error": "not_authorised", "reason": "Not management user"})
    d = new_browser()
    d.get(warren.http_url + "/")
    ui_login(d, name, "ui-login-pw")
    error = wait_for_in(d, LOGIN_ERROR)
    assert "Login failed" in error.text or "Not management user" in error.text, error.text
    assert wait_for_in(d, LOGIN_FORM).is_displayed()
    assert not d.execute_script(READY_JS)


def test_management_user_logs_in_and_out(warren, new_browser, user):
    name = user("ui-login-mgmt", "ui-login-pw", "management")
    d = new_browser()
    d.get(warren.http_url + "/")
    ui_login(d, name, "ui-login-pw")
    wait_ready(d)
    assert logged_in(d)
    assert wait_for_in(d, '[data-test="who"]', name).is_displayed()  # who is logged in
    wait_for_in(d, LOGOUT).click()
    wait_for_in(d, LOGIN_FORM)
    # The credentials are gone: a reload shows the form again, not the page.
    d.refresh()
    wait_for_in(d, LOGIN_FORM)
    assert not d.execute_script(READY_JS)


def test_deep_link_before_login_lands_there_after_login(warren, new_browser):
    status, body = warren.api("PUT", "/api/queues/%2F/ui-login-deep", {"durable": False})
    assert status in (201, 204), (status, body)
    try:
        d = new_browser()
        d.get(warren.http_url + "/#/queues/%2F/ui-login-deep")
        ui_login(d, "guest", "guest")
        wait_ready(d)
        assert d.execute_script("return location.hash") == "#/queues/%2F/ui-login-deep"
        wait_for_in(d, "#main h1", "ui-login-deep")
    finally:
        warren.api("DELETE", "/api/queues/%2F/ui-login-deep")


def luminance(css_color):
    """Relative luminance (0 black .. 1 white) of an rgb()/rgba() CSS color."""
    parts = css_color[css_color.index("(") + 1:css_color.index(")")].split(",")
    r, g, b = (float(p) / 255 for p in parts[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def background(driver):
    """The page's visible background color: body's, or html's when body's is clear."""
    return driver.execute_script("""
        for (const el of [document.body, document.documentElement]) {
          const c = getComputedStyle(el).backgroundColor;
          if (c && c !== 'transparent' && !/rgba\\(.*,\\s*0\\)$/.test(c)) return c;
        }
        return 'rgb(255, 255, 255)';""")


def test_dark_mode_follows_the_system_setting(warren, new_browser):
    d = new_browser()
    d.get(warren.http_url + "/")
    ui_login(d, "guest", "guest")
    wait_ready(d)
    light = background(d)
    assert luminance(light) > 0.6, f"light background is {light}"
    d.execute_cdp_cmd("Emulation.setEmulatedMedia", {
        "features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    wait_until(lambda: luminance(background(d)) < 0.25, 5,
               "a dark background under prefers-color-scheme: dark")
    save_shot(d, "overview-dark")
    text = d.execute_script("return getComputedStyle(document.body).color")
    assert luminance(text) > 0.6, f"text on the dark background is {text}"
    d.execute_cdp_cmd("Emulation.setEmulatedMedia", {
        "features": [{"name": "prefers-color-scheme", "value": "light"}]})
    wait_until(lambda: luminance(background(d)) > 0.6, 5, "the light background back")
